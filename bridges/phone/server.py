"""The phone bridge's process: a WebSocket endpoint Twilio Media Streams connect to.

Each connection is one call. Its ``start`` names the workspace and caller in
``customParameters``, signed by the bridge's own TwiML endpoint (``GET /twilio/voice``,
the number's voice webhook): a ``start`` whose signature is missing, wrong or expired
is refused. The bridge mints a service token acting for that caller, opens a
conversation, and carries the call over it
(:class:`~bridges.phone.call.PhoneCall`). The engines are shared by every call the
process holds; their worker limits bound the CPU they take.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

import anyio
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridges.speech import EspeakSynthesizer, PocketSphinxRecognizer, SpeechToText, TextToSpeech
from bridges.voice import BridgeError, VoiceBridge, conversation_ws_url, create_conversation
from bridges.wire import mint_token, new_call_id

from . import twilio, twiml
from .call import PhoneCall, TwilioSpeaker
from .signing import SignatureError, twilio_signature_ok, verify

log = logging.getLogger("bridges.phone")

STREAM_PATH = "/twilio/stream"
TWIML_PATH = "/twilio/voice"
START_TIMEOUT = 10.0
MAX_MESSAGE_BYTES = 64 * 1024  # a 20 ms media message is about 300 bytes


@dataclass
class PhoneBridge:
    """What every call of the process shares: the server, the secrets, the engines.

    *secret* signs the callers' service tokens (the server's); *signing_secret* the
    stream parameters. *public_url* is the bridge as Twilio reaches it
    (``https://phone.example.org``): the TwiML's stream URL, and the URL Twilio's
    request signature covers, checked when *twilio_auth_token* is set.
    """

    server: str
    secret: str
    signing_secret: str
    public_url: str
    workspace: str = "demo"
    twilio_auth_token: str | None = None
    stt: SpeechToText = field(default_factory=PocketSphinxRecognizer)
    tts: TextToSpeech = field(default_factory=EspeakSynthesizer)
    calls: int = 0

    async def handle(self, socket: ServerConnection) -> None:
        """One Media Stream, from ``connected`` to ``stop``."""
        if socket.request is None or socket.request.path.split("?")[0] != STREAM_PATH:
            await socket.close(1008, "not found")
            return
        try:
            with anyio.fail_after(START_TIMEOUT):
                start = await _wait_for_start(socket)
        except (TimeoutError, ConnectionClosed, twilio.MediaStreamError) as exc:
            log.info("phone call: no valid start (%s)", type(exc).__name__)
            await socket.close(1008, "no start")
            return
        parameters = start.custom_parameters
        try:
            verify(self.signing_secret, parameters)
        except SignatureError as exc:
            log.warning("phone call: refused a stream (%s)", exc)
            await socket.close(1008, "refused")
            return
        workspace, caller = parameters.get("workspace"), parameters.get("caller")
        if not workspace or not caller:
            log.info("phone call: refused, the start names no workspace or caller")
            await socket.close(1008, "refused")
            return
        self.calls += 1
        try:
            await self._carry(socket, start, workspace, caller)
        except BridgeError as exc:
            log.info("phone call: ended (%s)", type(exc).__name__)
        finally:
            self.calls -= 1
            await socket.close()

    async def _carry(
        self, socket: ServerConnection, start: twilio.Start, workspace: str, caller: str
    ) -> None:
        parameters = start.custom_parameters

        # The call's caller is verified once for the whole call, across reconnections.
        call = new_call_id()

        def token() -> str:
            return mint_token(
                self.secret,
                workspace=workspace,
                caller=caller,
                name=parameters.get("caller_name"),
                call=call,
            )

        async def fresh_token() -> str:
            return token()

        conversation_id = await create_conversation(
            self.server, token(), parameters.get("agent_id")
        )

        async def send(message: str) -> None:
            with contextlib.suppress(ConnectionClosed):
                await socket.send(message)

        async def receive() -> str | bytes | None:
            try:
                return await socket.recv()
            except ConnectionClosed:
                return None

        async with anyio.create_task_group() as tg:
            speaker = TwilioSpeaker(self.tts, send, start.stream_sid, tg)
            bridge = VoiceBridge(
                conversation_ws_url(self.server, conversation_id),
                token(),
                speaker=speaker,
                token_source=fresh_token,
            )
            await PhoneCall(bridge, self.stt, speaker).run(receive)
            tg.cancel_scope.cancel()

    async def serve(self, host: str, port: int) -> Server:
        """Start listening; the caller closes the returned server."""
        return await serve(
            self.handle,
            host,
            port,
            max_size=MAX_MESSAGE_BYTES,
            process_request=self.process_request,
        )

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP: the TwiML webhook; anything else goes on to the stream endpoint."""
        if urlsplit(request.path).path != TWIML_PATH:
            return None
        if self.twilio_auth_token is not None:
            url = self.public_url.rstrip("/") + request.path
            signature = request.headers.get("X-Twilio-Signature")
            if not twilio_signature_ok(self.twilio_auth_token, url, signature):
                log.warning("phone bridge: refused a webhook without Twilio's signature")
                return _response(HTTPStatus.FORBIDDEN, "forbidden\n", "text/plain")
        query = dict(parse_qsl(urlsplit(request.path).query))
        try:
            parameters = twiml.stream_parameters(
                self.signing_secret, workspace=self.workspace, caller_number=query.get("From", "")
            )
        except ValueError:
            return _response(HTTPStatus.BAD_REQUEST, "no caller number\n", "text/plain")
        parts = urlsplit(self.public_url)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        stream_url = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{STREAM_PATH}"
        return _response(
            HTTPStatus.OK, twiml.connect_stream(stream_url, parameters), twiml.CONTENT_TYPE
        )


def _response(status: HTTPStatus, body: str, content_type: str) -> Response:
    data = body.encode()
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return Response(status.value, status.phrase, headers, data)


async def _wait_for_start(socket: ServerConnection) -> twilio.Start:
    while True:
        event = twilio.parse(await socket.recv())
        if isinstance(event, twilio.Start):
            return event
        if not isinstance(event, twilio.Connected):
            raise twilio.MediaStreamError("a stream must begin with start")
