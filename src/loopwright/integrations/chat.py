"""An OpenAI-compatible chat-completions client (the ``ChatClient`` port) for model annotators.

``POST {url}/chat/completions`` with ``{"model", "messages", "temperature": 0}`` and, when the
project names ``api_key_env``, ``Authorization: Bearer <that variable's value>``; the answer is
``choices[0].message.content``. OpenAI, Azure OpenAI's compatible route, vLLM, llama.cpp's
server, Ollama and LiteLLM speak this wire format.

One attempt per call, ``timeout_s`` for connecting and for each read (no retries: a judge that
is down costs its caller one timeout, and the caller stops asking for the rest of the batch). Anything
but a 2xx answer carrying a string ``content`` raises :class:`ModelUnavailable` with the reason;
the key never appears in a message. Standard library only (``urllib``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from loopwright.errors import ModelUnavailable
from loopwright.settings import secret

MAX_ANSWER_BYTES = 1_000_000


class HttpChat:
    """Calls a chat-completions endpoint over HTTP(S)."""

    def complete(
        self,
        url: str,
        model: str,
        messages: Sequence[Mapping[str, str]],
        api_key_env: str | None,
        timeout_s: float,
    ) -> str:
        import urllib.error  # here, not at import: `loopwright status` never calls a judge
        import urllib.request

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key_env is not None:
            key = secret(api_key_env)
            if key is None:
                raise ModelUnavailable(f"the environment variable {api_key_env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": model, "messages": [dict(m) for m in messages], "temperature": 0}
        endpoint = url.rstrip("/") + "/chat/completions"
        request = urllib.request.Request(endpoint, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise ModelUnavailable(f"chat endpoint answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelUnavailable(
                f"no answer from the chat endpoint: {type(reason).__name__}: {reason}"
            ) from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise ModelUnavailable(f"chat endpoint answered more than {MAX_ANSWER_BYTES} bytes")
        return _content(raw)


def _content(raw: bytes) -> str:
    """``choices[0].message.content`` of a chat-completions answer, or ModelUnavailable."""
    try:
        answer: Any = json.loads(raw)
        content = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ModelUnavailable("chat endpoint answered something other than a chat completion") from None
    if not isinstance(content, str):
        raise ModelUnavailable("chat endpoint answered a completion without text content")
    return content
