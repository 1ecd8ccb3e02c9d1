"""``manage.py journey_chat <agent_key>``: chat with a registered journey in the terminal.

Each line you type is one turn, played through the app's own host (``run_turn``: the ORM
memory, the lease, the event table), so a chat here is a real conversation you can open
in the admin or resume later with ``--conversation``. After each turn the journey's step
("step k of n") is shown. With no model configured, the offline stand-in answers (a
rule-based stand-in, not an AI) and the command says so.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

QUIT = {"/quit", "/exit", "quit", "exit"}


class Command(BaseCommand):
    help = "Chat with a registered journey agent in the terminal (one line = one turn)."
    #: ``call_command("journey_chat", key, stdin=StringIO(...))`` feeds the chat (tests).
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent_key", help="Key of a registered agent.")
        parser.add_argument(
            "--conversation", metavar="UUID", help="Resume this conversation instead of a new one."
        )
        parser.add_argument(
            "--user", metavar="USERNAME", help="Chat as this user (the conversation's owner)."
        )
        parser.add_argument(
            "--history",
            type=int,
            default=6,
            metavar="N",
            help="When resuming, show the last N messages first (default 6).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from ...host import registry
        from ...host.turns import ConversationNotFound, UnknownAgent, run_turn_sync

        key: str = options["agent_key"]
        stdin: TextIO = options.get("stdin") or sys.stdin
        try:
            runtime = registry.get_runtime(key)
        except LookupError:
            known = ", ".join(sorted(registry.registered_runtimes())) or "none"
            raise CommandError(
                f"No agent registered with key {key!r} (registered: {known})"
            ) from None
        user = self._user(options.get("user"))
        conversation = options.get("conversation")
        if conversation:
            try:
                conversation = str(uuid.UUID(conversation))
            except ValueError:
                raise CommandError(f"--conversation must be a UUID, got {conversation!r}") from None
            self._show_history(conversation, int(options["history"]))
        self._ensure_model(runtime)
        self.stdout.write(
            f"Chatting with {key}"
            + (f" in conversation {conversation}" if conversation else "")
            + ". Type /quit (or end the input) to stop."
        )
        while True:
            self.stdout.write("you> ", ending="")
            self.stdout.flush()
            line = stdin.readline()
            if not line:
                self.stdout.write("")
                break
            text = line.strip()
            if not text:
                continue
            if text.lower() in QUIT:
                break
            try:
                turn = run_turn_sync(key, conversation, text, user, create=conversation is None)
            except (ConversationNotFound, UnknownAgent) as exc:
                raise CommandError(str(exc)) from exc
            except Exception as exc:  # a busy conversation or an unreachable model
                self.stderr.write(f"error: {type(exc).__name__}: {exc}")
                continue
            conversation = turn.conversation_id
            self.stdout.write(f"{turn.journey}> {turn.reply}")
            self.stdout.write(self.style.HTTP_INFO(_step_line(turn)))
        if conversation:
            self.stdout.write(f"Conversation: {conversation}  (resume with --conversation)")

    def _user(self, username: str | None) -> Any:
        if not username:
            return None
        model = get_user_model()
        try:
            manager: Any = model._default_manager
            return manager.get_by_natural_key(username)
        except model.DoesNotExist:
            raise CommandError(f"No user {username!r}") from None

    def _ensure_model(self, runtime: Any) -> None:
        """Give agents without a model the configured one, else the offline stand-in."""
        targets = [runtime, *getattr(runtime, "agents", {}).values()]
        if all(getattr(t, "llm_client", "-") is not None for t in targets):
            return
        from ....llm.resolve import get_llm_client_or_standin

        client = get_llm_client_or_standin()
        for target in targets:
            if getattr(target, "llm_client", "-") is None:
                target.llm_client = client
        if getattr(client, "is_offline_standin", False):
            self.stdout.write(
                self.style.WARNING(
                    "No LLM is configured (AGENT_RUNTIME_FRAMEWORK['LLM'] or an API key in the "
                    "environment): answers come from the offline stand-in, a rule-based "
                    "stand-in, not an AI."
                )
            )
        else:
            model = getattr(client, "model", None) or type(client).__name__
            self.stdout.write(f"Model: {model}")

    def _show_history(self, conversation: str, count: int) -> None:
        from ...models import Conversation, Journey, JourneyMessage

        cid = uuid.UUID(conversation)
        if not Conversation.objects.filter(id=cid).exists():
            raise CommandError(f"No conversation {conversation}")
        journey = Journey.objects.filter(conversation_id=cid).order_by("-updated_at").first()
        if journey is not None:
            self.stdout.write(f"Resuming {journey.agent_key} at step {journey.step or '-'}.")
        if count <= 0:
            return
        rows = list(
            JourneyMessage.objects.filter(conversation_id=cid, role__in=("user", "assistant"))
            .exclude(content__isnull=True)
            .exclude(content="")
            .order_by("-seq")[:count]
        )
        for row in reversed(rows):
            who = "you" if row.role == "user" else "agent"
            self.stdout.write(self.style.HTTP_NOT_MODIFIED(f"  {who}: {row.content}"))


def _step_line(turn: Any) -> str:
    progress = turn.progress or {}
    index, total = progress.get("index", 0), progress.get("total", 0)
    where = f"step {index} of {total}: {turn.step}" if total else f"step: {turn.step}"
    return f"  [{where}{' - journey complete' if turn.complete else ''}]"
