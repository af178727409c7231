from __future__ import annotations

from django.urls import path

from chatpeer import views

urlpatterns = [
    path("v1/conversations", views.create_conversation),
    path("readyz", views.readyz),
]
