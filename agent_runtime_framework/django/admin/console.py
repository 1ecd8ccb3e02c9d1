"""The staff console in the Django admin: the queue of conversations waiting for a person,
and a conversation page to take over, reply and hand back (``handoff.py`` does the work).

*Agent journeys → Conversations* is the queue (waiting ones first, oldest first). Only
users with ``agent_runtime.handle_conversation`` (and ``is_staff``, as for any admin page)
see it; others get 403 and no data. Actions are POST forms with Django's CSRF token and
report through ``django.contrib.messages``; the page polls a small JSON view for new
messages every few seconds (no JS build step).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from ..host.approvals import (
    AlreadyDecided,
    ApprovalError,
    approvals_of,
    decide_and_apply,
    pending_approvals,
)
from ..host.handoff import (
    AlreadyTaken,
    HandoffError,
    can_handle,
    display_name,
    hand_back,
    handoff_queue,
    staff_reply,
    take_over,
)
from ..host.turns import current_journey_row, journeys_of_sync
from ..models import Approval, Conversation, JourneyMessage

__all__ = ["ConversationConsoleAdmin"]

#: Messages the conversation page shows (the newest).
TRANSCRIPT_LIMIT = 300


def _message_row(row: JourneyMessage) -> dict[str, Any]:
    staff = (row.metadata or {}).get("staff") if isinstance(row.metadata, dict) else None
    return {
        "seq": row.seq,
        "role": row.role,
        "content": row.content or "",
        "tool_calls": [
            ((c.get("function") or {}).get("name") or "") for c in (row.tool_calls or [])
        ],
        "staff": (staff or {}).get("name", "") if isinstance(staff, dict) else "",
        "created_at": row.created_at.isoformat(),
    }


def _waiting(conversation: Conversation) -> str:
    return _since(conversation.handoff_requested_at)


def _since(since: Any) -> str:
    if since is None:
        return ""
    seconds = int((timezone.now() - since).total_seconds())
    minutes, seconds = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


@admin.register(Conversation)
class ConversationConsoleAdmin(admin.ModelAdmin):
    """Conversations with people: the staff queue and the conversation console."""

    change_list_template = "agent_runtime/admin/handoff_queue.html"

    # -- permissions: the console is for staff who handle conversations ---------------------
    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_handle(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_handle(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("", view(self.queue_view), name="agent_runtime_conversation_changelist"),
            path(
                "<uuid:conversation_id>/console/",
                view(self.console_view),
                name="agent_runtime_conversation_console",
            ),
            path(
                "<uuid:conversation_id>/console/poll/",
                view(self.poll_view),
                name="agent_runtime_conversation_console_poll",
            ),
            path(
                "<uuid:conversation_id>/change/",
                view(self.console_view),
                name="agent_runtime_conversation_change",
            ),
        ]

    def _check(self, request: HttpRequest) -> None:
        if not can_handle(request.user):
            raise PermissionDenied

    # -- the queue ----------------------------------------------------------------------------
    def queue_view(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        rows: QuerySet[Conversation] = handoff_queue()[:200]
        conversations = list(rows)
        journeys = journeys_of_sync([c.id for c in conversations])
        queue = []
        for c in conversations:
            row = current_journey_row(c.agent_key, journeys.get(c.id, []))
            queue.append(
                {
                    "id": c.id,
                    "status": c.get_handoff_status_display(),
                    "waiting": _waiting(c),
                    "requested_at": c.handoff_requested_at,
                    "journey": row["agent_key"] if row else c.agent_key,
                    "step": row["step"] if row else "",
                    "reason": c.handoff_reason,
                    "source": c.handoff_source,
                    "handled_by": display_name(c.handled_by) if c.handled_by_id else "",
                    "owner": display_name(c.owner) if c.owner_id else "",
                    "url": reverse("admin:agent_runtime_conversation_console", args=[c.id]),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Conversations waiting for a person",
            "queue": queue,
            # Tools that need approval (approvals.py): every pending one, oldest first.
            "approvals": [
                {
                    "conversation": a.conversation_id,
                    "waiting": _since(a.created_at),
                    "journey": a.agent_key,
                    "tool": a.tool,
                    "summary": a.summary,
                    "approver": a.approver,
                    "url": reverse(
                        "admin:agent_runtime_conversation_console", args=[a.conversation_id]
                    ),
                }
                for a in pending_approvals()[:200]
            ],
        }
        return TemplateResponse(request, self.change_list_template, context)

    # -- one conversation ---------------------------------------------------------------------
    def _conversation(self, conversation_id: Any) -> Conversation:
        found = (
            Conversation.objects.filter(id=conversation_id)
            .select_related("handled_by", "owner")
            .first()
        )
        if found is None:
            raise Http404
        return found

    def console_view(self, request: HttpRequest, conversation_id: Any) -> HttpResponse:
        self._check(request)
        conversation = self._conversation(conversation_id)
        url = reverse("admin:agent_runtime_conversation_console", args=[conversation.id])
        if request.method == "POST":
            self._act(request, conversation)
            return HttpResponseRedirect(url)
        recent = list(
            JourneyMessage.objects.filter(conversation=conversation).order_by("-seq")[
                :TRANSCRIPT_LIMIT
            ]
        )
        recent.reverse()
        journeys = journeys_of_sync([conversation.id]).get(conversation.id, [])
        current = current_journey_row(conversation.agent_key, journeys)
        mine = conversation.handled_by_id == request.user.pk
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Conversation {conversation.id}",
            "conversation": conversation,
            "status": conversation.get_handoff_status_display(),
            "handled_by": display_name(conversation.handled_by),
            "mine": mine,
            "can_take": conversation.handled_by_id is None,
            "can_hand_back": bool(conversation.handoff_status)
            and (mine or conversation.handled_by_id is None or request.user.is_superuser),
            "waiting": _waiting(conversation),
            "transcript": [_message_row(m) for m in recent],
            "last_seq": recent[-1].seq if recent else -1,
            "journeys": journeys,
            "current": current,
            "approvals": approvals_of(conversation.id),
            "poll_url": reverse(
                "admin:agent_runtime_conversation_console_poll", args=[conversation.id]
            ),
        }
        return TemplateResponse(request, "agent_runtime/admin/handoff_conversation.html", context)

    def _act(self, request: HttpRequest, conversation: Conversation) -> None:
        action = request.POST.get("action", "")
        try:
            if action == "take":
                if take_over(conversation.id, request.user):
                    messages.success(request, "You are handling this conversation.")
                else:
                    messages.info(request, "You are already handling this conversation.")
            elif action == "reply":
                staff_reply(conversation.id, request.user, request.POST.get("content", ""))
                messages.success(request, "Reply sent.")
            elif action == "hand_back":
                hand_back(conversation.id, request.user)
                messages.success(request, "Handed back to the assistant.")
            elif action in ("approve", "reject"):
                row = decide_and_apply(
                    conversation.id,
                    request.POST.get("approval_id", ""),
                    action == "approve",
                    by=display_name(request.user),
                    user=request.user,
                    as_staff=True,
                )
                messages.success(request, f"{row.tool}: {row.get_status_display().lower()}.")
            else:
                messages.error(request, f"Unknown action {action!r}.")
        except AlreadyTaken as exc:
            messages.error(request, f"{exc.by} is already handling this conversation.")
        except AlreadyDecided as exc:
            messages.error(request, f"This approval is already {exc.status}.")
        except Approval.DoesNotExist:
            messages.error(request, "No such approval in this conversation.")
        except ApprovalError as exc:
            messages.error(request, str(exc))
        except (HandoffError, ValueError) as exc:
            messages.error(request, str(exc))

    def poll_view(self, request: HttpRequest, conversation_id: Any) -> JsonResponse:
        """New messages after ``?after=<seq>`` and the handoff status, for the page's poll."""
        self._check(request)
        conversation = self._conversation(conversation_id)
        try:
            after = int(request.GET.get("after", "-1"))
        except ValueError:
            after = -1
        rows = JourneyMessage.objects.filter(conversation=conversation, seq__gt=after).order_by(
            "seq"
        )[:TRANSCRIPT_LIMIT]
        return JsonResponse(
            {
                "status": conversation.handoff_status,
                "status_display": conversation.get_handoff_status_display(),
                "handled_by": display_name(conversation.handled_by),
                "messages": [_message_row(m) for m in rows],
            }
        )
