"""`lumabot-demo/index.html`: the demo's conversation as Slack shows it, with its images, so a
person can look rather than read. One self-contained page (no scripts, no network), the images
beside it in the demo's folder."""
from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .demo import Entry, Transcript

_STYLE = """
body { font: 15px/1.46 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif,
       "Apple Color Emoji", "Noto Color Emoji";
       color: #1d1c1d; background: #f8f8f8; margin: 0; }
main { max-width: 760px; margin: 0 auto; background: #fff; min-height: 100vh;
       border-left: 1px solid #ddd; border-right: 1px solid #ddd; }
header { padding: 14px 20px; border-bottom: 1px solid #ddd; font-weight: 700; font-size: 18px; }
header small { font-weight: 400; color: #616061; font-size: 13px; margin-left: 8px; }
.msg { display: flex; gap: 10px; padding: 8px 20px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; flex: none; color: #fff;
          font-weight: 700; display: flex; align-items: center; justify-content: center; }
.bot .avatar { background: #611f69; } .person .avatar { background: #1264a3; }
.who { font-weight: 900; } .bot .who::after { content: "APP"; font-size: 10px; font-weight: 700;
       color: #616061; background: #e8e8e8; border-radius: 3px; padding: 1px 4px; margin-left: 6px; }
.line { white-space: pre-wrap; }
blockquote { margin: 2px 0; padding-left: 10px; border-left: 4px solid #ddd; }
.thread { margin: 0 20px 8px 66px; border-left: 3px solid #ddd; padding-left: 4px; }
.thread-label { color: #1264a3; font-size: 13px; font-weight: 700; padding: 4px 16px; }
img { display: block; max-width: 100%; max-height: 360px; border-radius: 8px;
      border: 1px solid #ddd; margin-top: 4px; }
footer { color: #616061; font-size: 13px; padding: 14px 20px; border-top: 1px solid #ddd; }
"""


def _line(line: str) -> str:
    if line.startswith("> "):  # Slack's quote: lumabot quotes the prompt
        return f'<blockquote>{escape(line[2:])}</blockquote>'
    return f'<div class="line">{escape(line)}</div>'


def _message(e: Entry) -> str:
    from .demo import BOT_NAME

    kind = "bot" if e.who == BOT_NAME else "person"
    # An image's entry: what its message says (its buttons), then the file (its label last).
    body = ("".join(_line(line) for line in e.lines[:-1])
            + f'<img src="{escape(e.image)}" alt="{escape(e.lines[-1] if e.lines else e.image)}">'
            if e.image else "".join(_line(line) for line in e.lines))
    return (f'<div class="msg {kind}"><div class="avatar">{escape(e.who[:1].upper())}</div>'
            f'<div><div class="who">{escape(e.who)}</div>{body}</div></div>')


def page(transcript: Transcript) -> str:
    """The page: top-level messages in order, each thread's replies in a box under its message."""
    threads: dict[str | None, list[Entry]] = {}
    for e in transcript.entries:
        if e.thread_ts is not None:
            threads.setdefault(e.thread_ts, []).append(e)
    parts = []
    shown: set[str] = set()
    for e in transcript.entries:
        if e.thread_ts is not None:
            continue
        parts.append(_message(e))
        replies = threads.get(e.ts) if e.ts else None
        if replies:
            shown.add(e.ts or "")
            n = len(replies)
            parts.append(f'<div class="thread"><div class="thread-label">{n} repl{"y" if n == 1 else "ies"}</div>'
                         + "".join(_message(r) for r in replies) + "</div>")
    for ts, replies in threads.items():  # threads whose root the demo did not see
        if ts not in shown:
            parts.append('<div class="thread">' + "".join(_message(r) for r in replies) + "</div>")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>lumabot demo · #{escape(transcript.channel)}</title><style>{_STYLE}</style></head>"
        f"<body><main><header>#{escape(transcript.channel)}<small>lumabot demo, against the "
        "built-in fakes of Slack and Luma</small></header>\n"
        + "\n".join(parts)
        + f"\n<footer>Played in {transcript.seconds:.1f} s by <code>lumabot demo</code>; the images "
        "are drawn by the fake Luma (the prompt on a pattern; an edit is its source, changed, with "
        "the instruction written on it).</footer></main></body></html>\n"
    )
