"""Everything users read, in English and Korean, and the one place errors become words.

`say(language, key, **values)` renders a message. Values that came from users are
escaped here (`escape`, `code`), so no reason or id can mention, link or format.
"""

from __future__ import annotations

from bot.sharing.errors import CommandError

LANGUAGES = ("en", "ko")

USAGE = {
    "en": (
        "*Usage*\n"
        "• `/share-image <image_id> <member_id> [reason]`: share an image with another account\n"
        "• `/share-image unshare <image_id> <member_id> [reason]`: remove that account again\n"
        "• `/share-image list <image_id>`: the image's members and their status\n"
        "• `/share-image status`: your recent requests\n"
        "• `/share-image admin …`: grants, known members, on-call (admins)\n"
        "`image_id` is a UUID such as `70a599e0-31e7-49b7-b260-868f441e862b`; "
        "`member_id` is the other account's id: 1 to 64 letters, digits or dashes, "
        "such as `a8f10467abfc4b87b64614ab36eb9ae4`."
    ),
    "ko": (
        "*사용법*\n"
        "• `/share-image <image_id> <member_id> [사유]`: 이미지를 다른 계정과 공유\n"
        "• `/share-image unshare <image_id> <member_id> [사유]`: 공유 해제\n"
        "• `/share-image list <image_id>`: 이미지 멤버와 상태\n"
        "• `/share-image status`: 내 최근 요청\n"
        "• `/share-image admin …`: 권한, 등록 멤버, 당직 (관리자)\n"
        "`image_id`는 `70a599e0-31e7-49b7-b260-868f441e862b` 같은 UUID이고, "
        "`member_id`는 상대 계정 ID로 영문자·숫자·대시 1~64자입니다 "
        "(예: `a8f10467abfc4b87b64614ab36eb9ae4`)."
    ),
}

ADMIN_USAGE = (
    "`/share-image admin grant|revoke <@user> <requester|sharer|approver|admin> [image_id]`\n"
    "`/share-image admin grants`\n"
    "`/share-image admin member add <member_id> <name>` · `member remove <member_id>` · "
    "`member list`\n"
    "`/share-image admin oncall add <@user> <from ISO time> <to ISO time>` · "
    "`oncall remove <@user>` · `oncall list`"
)

TEXTS: dict[str, tuple[str, str]] = {
    # -- bad input --------------------------------------------------------------------
    "image_id_invalid": (
        "{token} is not an image id. Image ids are UUIDs like "
        "`70a599e0-31e7-49b7-b260-868f441e862b`.",
        "{token}은(는) 이미지 ID가 아닙니다. 이미지 ID는 "
        "`70a599e0-31e7-49b7-b260-868f441e862b` 같은 UUID입니다.",
    ),
    "image_id_not_ascii": (
        "{token} has characters that only look like an image id (non-ASCII or invisible). "
        "Type or paste the plain id.",
        "{token}에 이미지 ID처럼 보이지만 다른 문자(비ASCII 또는 보이지 않는 문자)가 "
        "있습니다. ID를 그대로 다시 입력해 주세요.",
    ),
    "member_id_invalid": (
        "{token} is not a member id. Member ids are 1 to 64 letters, digits or dashes, "
        "like `a8f10467abfc4b87b64614ab36eb9ae4`.",
        "{token}은(는) 멤버 ID가 아닙니다. 멤버 ID는 영문자·숫자·대시 1~64자입니다 "
        "(예: `a8f10467abfc4b87b64614ab36eb9ae4`).",
    ),
    "member_id_not_ascii": (
        "{token} has characters that only look like a member id (non-ASCII or invisible). "
        "Type or paste the plain id.",
        "{token}에 멤버 ID처럼 보이지만 다른 문자(비ASCII 또는 보이지 않는 문자)가 "
        "있습니다. ID를 그대로 다시 입력해 주세요.",
    ),
    "member_id_too_long": (
        "{token} is longer than 64 characters, the most a member id can have.",
        "{token}은(는) 멤버 ID 최대 길이 64자보다 깁니다.",
    ),
    "member_missing": (
        "Which account should get the image? Add the member id after the image id.",
        "어느 계정과 공유할까요? 이미지 ID 뒤에 멤버 ID를 적어 주세요.",
    ),
    "unknown_command": (
        "I don't know {token}. Start with an image id, or one of "
        "`list`, `unshare`, `status`, `help`.",
        "{token}은(는) 알 수 없는 명령입니다. 이미지 ID나 "
        "`list`, `unshare`, `status`, `help` 중 하나로 시작해 주세요.",
    ),
    "missing_arguments": (
        "Something is missing: `/share-image {usage}`.",
        "빠진 부분이 있습니다: `/share-image {usage}`.",
    ),
    "extra_arguments": ("I didn't expect {extra} there.", "{extra}은(는) 필요하지 않습니다."),
    "reason_too_long": (
        "Keep the reason under {limit} characters.",
        "사유는 {limit}자 이내로 적어 주세요.",
    ),
    "reason_invisible": (
        "The reason has invisible or control characters; please retype it.",
        "사유에 보이지 않는 문자나 제어 문자가 있습니다. 다시 입력해 주세요.",
    ),
    "too_long": ("That command is longer than {limit} characters.", "명령이 {limit}자보다 깁니다."),
    "user_invalid": (
        "{token} is not a Slack user. Mention them, like @jane.",
        "{token}은(는) Slack 사용자가 아닙니다. @이름으로 멘션해 주세요.",
    ),
    "role_invalid": (
        "{token} is not a role. Roles: `requester`, `sharer`, `approver`, `admin`.",
        "{token}은(는) 역할이 아닙니다. 역할: `requester`, `sharer`, `approver`, `admin`.",
    ),
    "time_invalid": (
        "{token} is not a time. Use ISO 8601, like `2026-12-01T09:00+09:00`.",
        "{token}은(는) 시간 형식이 아닙니다. `2026-12-01T09:00+09:00` 같은 ISO 8601을 "
        "사용해 주세요.",
    ),
    "window_backwards": (
        "The shift must end after it starts.",
        "당직 종료 시간은 시작 시간보다 뒤여야 합니다.",
    ),
    "name_too_long": (
        "Keep the name under {limit} characters.",
        "이름은 {limit}자 이내로 적어 주세요.",
    ),
    "admin_usage": ("Admin commands:\n" + ADMIN_USAGE, "관리자 명령:\n" + ADMIN_USAGE),
    # -- permissions ---------------------------------------------------------------------
    "not_allowed": (
        "You don't have a role that lets you share images, so nothing was sent. "
        "An admin can grant you one: {admins}.",
        "이미지를 공유할 수 있는 역할이 없어 아무것도 보내지 않았습니다. "
        "관리자에게 역할을 요청하세요: {admins}.",
    ),
    "no_admins": (
        "nobody is an admin yet; whoever runs the bot can add one with "
        "`python -m bot grant <SLACK_USER_ID> admin`",
        "아직 관리자가 없습니다. 봇 운영자가 "
        "`python -m bot grant <SLACK_USER_ID> admin`으로 추가할 수 있습니다",
    ),
    "admin_only": (
        "Only admins can do that. Admins: {admins}.",
        "관리자만 할 수 있습니다. 관리자: {admins}.",
    ),
    # -- asking ----------------------------------------------------------------------------
    "ack_direct": (
        "On it: {action} image {image} with {member}. The answer comes in a thread here.",
        "처리 중입니다: 이미지 {image}을(를) {member}와(과) {action}. 결과는 이 채널 "
        "스레드로 알려 드립니다.",
    ),
    "ack_approval": (
        "This needs an approver's OK ({why}). I've asked them; you'll hear back in a thread here.",
        "승인이 필요합니다({why}). 승인자에게 요청했고, 결과는 이 채널 스레드로 알려 드립니다.",
    ),
    "why_role": ("your role asks for approval", "요청자 역할은 승인이 필요합니다"),
    "why_unknown_member": (
        "{member} is not a registered member",
        "{member}은(는) 등록되지 않은 멤버입니다",
    ),
    "duplicate": (
        "Request #{id} for image {image} and {member} is already {state}; follow it there: {link}",
        "이미지 {image}와(과) {member}에 대한 요청 #{id}이(가) 이미 {state} 상태입니다. "
        "여기서 확인하세요: {link}",
    ),
    "duplicate_nolink": (
        "Request #{id} for image {image} and {member} is already {state}; "
        "its thread is on its way.",
        "이미지 {image}와(과) {member}에 대한 요청 #{id}이(가) 이미 {state} 상태입니다. "
        "곧 스레드가 올라옵니다.",
    ),
    "action_share": ("sharing", "공유"),
    "action_unshare": ("unsharing", "공유 해제"),
    # -- the parent message ------------------------------------------------------------------
    "parent": (
        "<@{user}> asked to {verb} image {image} with {member}",
        "<@{user}> 님이 이미지 {image}을(를) {member}와(과) {verb} 요청했습니다",
    ),
    "verb_share": ("share", "공유"),
    "verb_unshare": ("unshare", "공유 해제"),
    "reason_label": ("Reason", "사유"),
    "state_queued": (":hourglass_flowing_sand: working on it", ":hourglass_flowing_sand: 처리 중"),
    "state_sending": (":hourglass_flowing_sand: working on it", ":hourglass_flowing_sand: 처리 중"),
    "state_awaiting_approval": (":raised_hand: awaiting approval", ":raised_hand: 승인 대기"),
    "state_pending": (
        ":white_check_mark: shared, *pending* until the account accepts",
        ":white_check_mark: 공유됨, 상대 계정 수락 전까지 *pending*",
    ),
    "state_accepted": (":tada: shared and *accepted*", ":tada: 공유되고 *수락*됨"),
    "state_rejected": (
        ":leftwards_arrow_with_hook: shared, but *rejected* by the account",
        ":leftwards_arrow_with_hook: 공유했지만 상대 계정이 *거절*함",
    ),
    "state_removed": (":wastebasket: member removed", ":wastebasket: 멤버 제거됨"),
    "state_failed": (":x: not done: {what}", ":x: 실패: {what}"),
    "state_denied": (":no_entry: denied by <@{by}>", ":no_entry: <@{by}> 님이 거절"),
    "state_expired": (":hourglass: expired without a decision", ":hourglass: 결정 없이 만료"),
    # -- outcomes in the thread -------------------------------------------------------------------
    "outcome_pending": (
        "Shared. {member} is *pending* until that account accepts the image "
        "(added {created}, updated {updated}).",
        "공유했습니다. {member}은(는) 상대 계정이 이미지를 수락할 때까지 *pending* "
        "상태입니다 (추가 {created}, 갱신 {updated}).",
    ),
    "outcome_accepted": (
        ":tada: {member} *accepted* image {image} ({updated}).",
        ":tada: {member}이(가) 이미지 {image}을(를) *수락*했습니다 ({updated}).",
    ),
    "outcome_rejected": (
        "{member} *rejected* image {image} ({updated}). Talk to that account's owners "
        "if they still need it.",
        "{member}이(가) 이미지 {image}을(를) *거절*했습니다 ({updated}). 필요하다면 상대 "
        "계정 담당자와 이야기해 보세요.",
    ),
    "outcome_follow_stopped": (
        "{member} still hasn't accepted after {days} days; I've stopped checking. "
        "`/share-image list {image_plain}` shows the current status.",
        "{days}일이 지나도 {member}이(가) 수락하지 않아 확인을 멈췄습니다. "
        "`/share-image list {image_plain}`으로 현재 상태를 볼 수 있습니다.",
    ),
    "outcome_gone": (
        "{member} is no longer a member of image {image}: it was removed outside this thread.",
        "{member}은(는) 더 이상 이미지 {image}의 멤버가 아닙니다. 이 스레드 밖에서 제거되었습니다.",
    ),
    "outcome_removed": (
        "Removed {member} from image {image}.",
        "이미지 {image}에서 {member}을(를) 제거했습니다.",
    ),
    "error_already_member": (
        "Image {image} is already shared with {member}{status}. Nothing changed.",
        "이미지 {image}은(는) 이미 {member}와(과) 공유되어 있습니다{status}. 변경 사항 없음.",
    ),
    "error_image_not_found": (
        "Image {image} wasn't found, or it doesn't belong to the bot's cloud account. "
        "Check the id (and the region the bot points at).",
        "이미지 {image}을(를) 찾을 수 없거나 봇의 클라우드 계정 소유가 아닙니다. "
        "ID(와 봇이 가리키는 리전)를 확인해 주세요.",
    ),
    "error_member_not_found": (
        "{member} is not a member of image {image}, so there was nothing to remove.",
        "{member}은(는) 이미지 {image}의 멤버가 아니어서 제거할 것이 없습니다.",
    ),
    "error_not_shareable": (
        "Image {image} can't be shared from this account (it may be public, or sharing "
        "it isn't permitted).",
        "이 계정에서는 이미지 {image}을(를) 공유할 수 없습니다(공개 이미지이거나 공유가 "
        "허용되지 않음).",
    ),
    "error_member_refused": (
        "The cloud refused member id {member}{detail}. Check the other account's id.",
        "클라우드가 멤버 ID {member}을(를) 거부했습니다{detail}. 상대 계정 ID를 확인해 주세요.",
    ),
    "error_misconfigured": (
        "The bot's cloud credentials or settings were refused, so nothing was done. "
        "This is for the admins to fix: {admins}.",
        "봇의 클라우드 인증 정보나 설정이 거부되어 아무것도 하지 않았습니다. "
        "관리자가 해결해야 합니다: {admins}.",
    ),
    "error_unavailable": (
        "The cloud API didn't answer properly, even after retries, so this isn't done. "
        "Please try again in a few minutes. (In case the cloud did it without telling me, "
        "I'll check for the next hour and say so here.)",
        "재시도했지만 클라우드 API가 제대로 응답하지 않아 완료되지 않았습니다. 몇 분 뒤 "
        "다시 시도해 주세요. (응답 없이 처리되었을 수도 있어 한 시간 동안 확인하고, "
        "처리되었다면 여기에 알려 드립니다.)",
    ),
    "landed_after_all": (
        "Update: the cloud did carry this out after all.",
        "업데이트: 클라우드가 결국 이 요청을 처리했습니다.",
    ),
    "error_unexpected": (
        "The cloud API answered something unexpected, so this isn't done. "
        "Please try again later; if it keeps happening, tell the admins: {admins}.",
        "클라우드 API가 예상하지 못한 응답을 보내 완료되지 않았습니다. 나중에 다시 "
        "시도하고, 계속되면 관리자에게 알려 주세요: {admins}.",
    ),
    "error_approval_unreachable": (
        "This needs an approver's OK, but I can't post the approval card (I'm not in the "
        "approval channel, or none is set up), so nothing was sent. An admin can fix it: "
        "{admins}.",
        "승인이 필요하지만 승인 요청 카드를 올릴 수 없어(승인 채널에 제가 없거나 설정되지 "
        "않음) 아무것도 보내지 않았습니다. 관리자가 해결할 수 있습니다: {admins}.",
    ),
    "error_storage": (
        "I couldn't write to my database, so nothing was done. Please try again in a minute.",
        "데이터베이스에 기록하지 못해 아무것도 하지 않았습니다. 잠시 뒤 다시 시도해 주세요.",
    ),
    "error_slack": (
        "I couldn't reach Slack properly just now, so nothing was done. Please try again.",
        "지금 Slack과 제대로 통신하지 못해 아무것도 하지 않았습니다. 다시 시도해 주세요.",
    ),
    "request_id": ("Request id for support: `{request_id}`", "지원 문의용 요청 ID: `{request_id}`"),
    "invite_hint": (
        "I'm not a member of that channel, so only you see this. Invite me "
        "(`/invite @Share Image`) to get a thread everyone can follow.",
        "이 채널의 멤버가 아니라서 본인에게만 보입니다. 모두가 볼 수 있는 스레드를 "
        "원하면 저를 초대해 주세요(`/invite @Share Image`).",
    ),
    # -- approvals -----------------------------------------------------------------------
    "card_title": ("Share request #{id}", "공유 요청 #{id}"),
    "card_intro": (
        "<@{user}> asks to {verb} image {image} with {member}.",
        "<@{user}> 님이 이미지 {image}을(를) {member}와(과) {verb} 요청합니다.",
    ),
    "card_why": ("Why approval: {why}", "승인 사유: {why}"),
    "card_when": ("Asked {when}, expires {expires}", "요청 {when}, 만료 {expires}"),
    "card_oncall": ("On call: {people}", "당직: {people}"),
    "card_approvers": (
        "Nobody is on call; approvers: {people}",
        "당직자가 없습니다. 승인자: {people}",
    ),
    "card_nobody": ("Nobody is on call and no approver is set up.", "당직자도 승인자도 없습니다."),
    "approve": ("Approve", "승인"),
    "deny": ("Deny", "거절"),
    "card_approved": (
        ":white_check_mark: Approved by <@{by}>",
        ":white_check_mark: <@{by}> 님이 승인",
    ),
    "card_denied": (":no_entry: Denied by <@{by}>", ":no_entry: <@{by}> 님이 거절"),
    "card_expired": (
        ":hourglass: Expired: nobody decided in time",
        ":hourglass: 만료: 제때 결정되지 않음",
    ),
    "thread_awaiting": (
        "This needs approval ({why}). I've asked the approvers in <#{channel}>: {link}",
        "승인이 필요합니다({why}). <#{channel}>에서 승인자에게 요청했습니다: {link}",
    ),
    "thread_approved": (
        "Approved by <@{by}>. Working on it now.",
        "<@{by}> 님이 승인했습니다. 지금 처리합니다.",
    ),
    "thread_denied": ("Denied by <@{by}>.{reason}", "<@{by}> 님이 거절했습니다.{reason}"),
    "deny_reason_line": (" Reason: {reason}", " 사유: {reason}"),
    "thread_expired": (
        "Nobody decided within {hours} hours, so this request expired. Ask again if it's "
        "still needed.",
        "{hours}시간 안에 결정되지 않아 요청이 만료되었습니다. 여전히 필요하면 다시 요청해 주세요.",
    ),
    "click_not_approver": (
        "Only approvers and admins can decide share requests. Approvers: {people}.",
        "승인자와 관리자만 공유 요청을 결정할 수 있습니다. 승인자: {people}.",
    ),
    "click_own_request": (
        "You can't decide your own request; another approver has to.",
        "본인의 요청은 결정할 수 없습니다. 다른 승인자가 결정해야 합니다.",
    ),
    "click_decided": (
        "Request #{id} was already {decision} by <@{by}>; nothing changed.",
        "요청 #{id}은(는) 이미 <@{by}> 님이 {decision}했습니다. 변경하지 않았습니다.",
    ),
    "decision_approved": ("approved", "승인"),
    "decision_denied": ("denied", "거절"),
    "click_done": (
        "Request #{id} is already {state}; nothing changed.",
        "요청 #{id}은(는) 이미 {state} 상태라서 변경하지 않았습니다.",
    ),
    "click_expired": (
        "Request #{id} expired before a decision; nothing was sent.",
        "요청 #{id}은(는) 결정 전에 만료되어 아무것도 보내지 않았습니다.",
    ),
    "click_unknown": (
        "That request doesn't exist (any more); nothing was done.",
        "그 요청은 존재하지 않아 아무것도 하지 않았습니다.",
    ),
    "deny_title": ("Deny request #{id}", "요청 #{id} 거절"),
    "deny_label": ("Reason (the requester sees it)", "사유 (요청자에게 보입니다)"),
    "deny_submit": ("Deny", "거절"),
    "cancel": ("Cancel", "취소"),
    # -- notify channel --------------------------------------------------------------------
    "notify": (
        "{icon} <@{user}> · {verb} image {image} with {member}: {state} · {link}",
        "{icon} <@{user}> · 이미지 {image} {member} {verb}: {state} · {link}",
    ),
    # -- list / status / admin ---------------------------------------------------------------
    "list_header": ("Members of image {image}:", "이미지 {image}의 멤버:"),
    "list_item": (
        "• {member}: *{status}* (added {created}, updated {updated})",
        "• {member}: *{status}* (추가 {created}, 갱신 {updated})",
    ),
    "list_empty": ("Image {image} has no members.", "이미지 {image}에 멤버가 없습니다."),
    "status_header": ("Your recent requests:", "최근 요청:"),
    "status_item": (
        "• #{id} {verb} {image} → {member}: {state} ({when})",
        "• #{id} {verb} {image} → {member}: {state} ({when})",
    ),
    "status_empty": ("You have no requests yet.", "아직 요청이 없습니다."),
    "granted": (
        "<@{user}> is now {role} for {scope}.",
        "<@{user}> 님이 이제 {scope}의 {role}입니다.",
    ),
    "grant_existed": (
        "<@{user}> already was {role} for {scope}.",
        "<@{user}> 님은 이미 {scope}의 {role}입니다.",
    ),
    "revoked": (
        "<@{user}> is no longer {role} for {scope}.",
        "<@{user}> 님은 더 이상 {scope}의 {role}이(가) 아닙니다.",
    ),
    "revoke_missing": (
        "<@{user}> wasn't {role} for {scope}.",
        "<@{user}> 님은 {scope}의 {role}이(가) 아니었습니다.",
    ),
    "all_images": ("all images", "모든 이미지"),
    "grants_header": ("Grants:", "권한:"),
    "grants_empty": ("No grants yet.", "아직 권한이 없습니다."),
    "member_added": (
        "{member} is now known as {name}.",
        "{member}을(를) {name}(으)로 등록했습니다.",
    ),
    "member_removed": (
        "{member} is no longer a known member.",
        "{member}을(를) 등록 멤버에서 제거했습니다.",
    ),
    "member_missing_known": (
        "{member} wasn't a known member.",
        "{member}은(는) 등록 멤버가 아니었습니다.",
    ),
    "members_header": ("Known members:", "등록 멤버:"),
    "members_empty": ("No known members yet.", "아직 등록 멤버가 없습니다."),
    "oncall_added": (
        "<@{user}> is on call from {starts} to {ends}.",
        "<@{user}> 님의 당직: {starts} ~ {ends}.",
    ),
    "oncall_removed": (
        "Removed {count} shift(s) of <@{user}>.",
        "<@{user}> 님의 당직 {count}건을 제거했습니다.",
    ),
    "oncall_header": ("On-call shifts:", "당직 일정:"),
    "oncall_empty": ("No on-call shifts.", "당직 일정이 없습니다."),
    # -- home tab --------------------------------------------------------------------------
    "home_title": ("Image sharing", "이미지 공유"),
    "home_mine": ("Your recent requests", "내 최근 요청"),
    "home_waiting": ("Waiting for a decision", "결정 대기 중"),
    "home_none_waiting": ("Nothing is waiting for a decision.", "결정을 기다리는 요청이 없습니다."),
}

STATE_WORDS: dict[str, tuple[str, str]] = {
    "awaiting_approval": ("awaiting approval", "승인 대기"),
    "queued": ("queued", "대기"),
    "sending": ("in progress", "처리 중"),
    "pending": ("pending", "pending"),
    "accepted": ("accepted", "수락됨"),
    "rejected": ("rejected", "거절됨(상대 계정)"),
    "removed": ("removed", "제거됨"),
    "failed": ("failed", "실패"),
    "denied": ("denied", "거절됨"),
    "expired": ("expired", "만료됨"),
}


def language_of(locale: str | None, default: str = "en") -> str:
    """`ko` for a Korean Slack locale (`ko-KR`), `en` for English, else the default."""
    if locale:
        prefix = locale.split("-")[0].split("_")[0].lower()
        if prefix in LANGUAGES:
            return prefix
    return default


def escape(text: str) -> str:
    """User text made inert for Slack mrkdwn: no mentions, links or channel pings."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """User text shown as inline code (backticks inside cannot close it)."""
    flat = " ".join(text.split())  # a newline would end the code span
    return "`" + escape(flat).replace("`", "'") + "`"


def say(language: str, key: str, **values: object) -> str:
    """The message `key` in `language` (falling back to English)."""
    english, korean = TEXTS[key]
    template = korean if language == "ko" else english
    return template.format(**values)


def usage(language: str) -> str:
    """The usage text."""
    return USAGE.get(language, USAGE["en"])


def state_word(language: str, state: str) -> str:
    """A request state in words."""
    english, korean = STATE_WORDS.get(state, (state, state))
    return korean if language == "ko" else english


def mentions(user_ids: list[str]) -> str:
    """`<@U1>, <@U2>`."""
    return ", ".join(f"<@{user}>" for user in user_ids)


def command_problem(language: str, error: CommandError) -> str:
    """A bad command, explained, followed by the usage."""
    values = {k: code(v) if k in {"token", "extra"} else v for k, v in error.values.items()}
    return say(language, error.problem, **values) + "\n\n" + usage(language)


def outcome_error(
    language: str,
    kind: str,
    *,
    image: str,
    member: str,
    admins: str,
    request_id: str | None = None,
    detail: str | None = None,
    member_status: str | None = None,
) -> str:
    """The friendly words for a failed share; the one place error kinds become text."""
    key = f"error_{kind}" if f"error_{kind}" in TEXTS else "error_unexpected"
    status = f" ({state_word(language, member_status)})" if member_status else ""
    shown_detail = f": {escape(detail)}" if detail and kind == "member_refused" else ""
    text = say(
        language,
        key,
        image=image,
        member=member,
        admins=admins,
        status=status,
        detail=shown_detail,
    )
    if request_id:
        text += "\n" + say(language, "request_id", request_id=escape(request_id))
    return text
