"""A fake Slack for tests: a local aiohttp server speaking Slack's wire protocol.

Nothing here reaches Slack. `FakeSlack` answers the Web API (``POST /api/<method>``, form-encoded,
query-string or JSON bodies, token in ``Authorization: Bearer`` or a ``token`` param), the
``files.getUploadURLExternal`` upload URLs, ``url_private`` downloads, ``response_url`` posts and a
Socket Mode websocket. Everything the bot does is recorded as plain data (``messages``, ``files``,
``ephemerals``, ``responses``, ``views``, ``reactions``, ``calls``, ``acks``...) for tests to assert on.

The other direction, Slack calling the bot, is played by `SlackPeer` (HTTP mode: signed requests)
and by `FakeSlack.send_envelope` (Socket Mode). Module-level helpers build realistic payloads.

Choices where Slack's behaviour is not documented or where the fake is deliberately strict
(see also the README of each method below):

* ``chat.postMessage`` / ``files.completeUploadExternal`` with a ``thread_ts`` must name a
  *top-level* message (or top-level file share) of that channel: ``thread_not_found`` /
  ``invalid_thread_ts`` otherwise (a reply's ts is refused; real Slack is sometimes lenient).
* A channel the bot is not a member of answers ``not_in_channel`` when public and
  ``channel_not_found`` when private (Slack hides private channels from non-members).
* ``files.completeUploadExternal``: an unknown file id, or one whose bytes were never POSTed to
  the upload URL -> ``file_not_found`` (with a ``detail`` field saying which); completing a file
  twice -> ``already_completed``; ``thread_ts`` without exactly one channel -> ``invalid_arguments``.
  ``files.info`` answers ``file_not_found`` until the upload is completed.
* ``views.open`` / ``views.push`` need a trigger id that the fake itself handed to the bot (via
  `SlackPeer` or `send_envelope`, or `register_trigger`), used once, within ``trigger_ttl``
  (3 s): ``invalid_trigger_id`` / ``exchanged_trigger_id`` / ``expired_trigger_id`` otherwise.
* Message events delivered through `SlackPeer.post_event` / `send_envelope` are recorded as user
  messages (so the bot may reply in their threads, react to them...). A reply whose parent is
  unknown gets a placeholder parent message (text ``""``).
* Errors carry Slack's ``response_metadata.messages`` where Slack has them (invalid_blocks...),
  plus sometimes a non-Slack ``detail`` string to ease debugging.

Real Slack's awkward parts, which the fake reproduces so tests catch what they break:

* Text people type arrives HTML-escaped (``&amp; &lt; &gt;``) in message events and slash
  commands: the payload builders take the text as typed and encode it (`slack_escape`); real
  mentions are markup (``<@UBOT>``), added by `app_mention_event` / ``mention_bot=True``.
* Slack Connect: ``external_team=`` on `SlackPeer` methods sends the envelope, ``event.team``,
  ``team.id`` and ``user.team_id`` of the other organisation, ``is_ext_shared_channel``, and the
  installing workspace only in ``authorizations[0].team_id`` / ``view.app_installed_team_id``.
* DMs: Slack never sends ``app_mention`` for a DM; delivering one is an AssertionError.
  `FakeSlack.user_posts` sends exactly the events Slack would for a person's message.
* ``files.completeUploadExternal`` shares asynchronously after ``share_delay`` seconds.
* ``latency`` delays every Web API answer; ``fail_next(..., after_effect=True)`` answers an error
  for a call that took effect; channels can be thread-only or read-only and uploads can be
  disabled for the workspace, with Slack's documented error codes.
* ``conversations.history`` / ``.replies`` return message ``metadata`` only with
  ``include_all_metadata=true``.
"""

from .blocks import validate_blocks
from .payloads import (
    slack_escape,
    slash_command_payload,
    event_callback,
    message_event,
    message_changed_event,
    app_mention_event,
    app_home_opened_event,
    app_uninstalled_event,
    tokens_revoked_event,
    url_verification_payload,
    block_actions_payload,
    view_submission_payload,
    message_shortcut_payload,
    reaction_event,
)
from .peer import PeerResponse, sign_request, SlackPeer
from .records import (
    DEFAULT_SCOPES,
    Message,
    UploadedFile,
    UserFile,
    Ephemeral,
    ResponsePost,
    ViewCall,
    SocketAck,
    Download,
    ChannelInfo,
    UserInfo,
    iter_pattern,
    new_trigger_id,
    next_ts,
    pattern_bytes,
)
from .server import FakeSlack

__all__ = [
    "DEFAULT_SCOPES",
    "FakeSlack",
    "SlackPeer",
    "PeerResponse",
    "Message",
    "UploadedFile",
    "UserFile",
    "Ephemeral",
    "ResponsePost",
    "ViewCall",
    "SocketAck",
    "Download",
    "ChannelInfo",
    "UserInfo",
    "next_ts",
    "new_trigger_id",
    "pattern_bytes",
    "iter_pattern",
    "validate_blocks",
    "sign_request",
    "slack_escape",
    "slash_command_payload",
    "event_callback",
    "message_event",
    "message_changed_event",
    "app_mention_event",
    "app_home_opened_event",
    "app_uninstalled_event",
    "tokens_revoked_event",
    "url_verification_payload",
    "block_actions_payload",
    "view_submission_payload",
    "message_shortcut_payload",
    "reaction_event",
]
