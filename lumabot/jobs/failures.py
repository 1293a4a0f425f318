"""What users are told when something goes wrong, in plain words.

One message for every Luma `failure_code`, for the synchronous errors, and for lumabot's own
failure reasons. Slack formatting (mrkdwn) is allowed; no internal detail or secret.
"""

from __future__ import annotations

RETRYABLE_FAILURE_CODES = frozenset({"generation_failed", "output_not_found", "rate_limited"})
# Luma does not charge for these.
REFUNDED_FAILURE_CODES = frozenset({"content_moderated", "generation_failed", "output_not_found"})

# Luma's final answers to a request (HTTP 4xx other than 404 and 429) as failure codes; any
# other 4xx is "bad_request". (404 on a generation is "generation_failed"; 429, 5xx and network
# errors are waited out.)
LUMA_STATUS_FAILURES: dict[int, str] = {
    400: "bad_request", 401: "misconfigured", 402: "out_of_balance", 403: "misconfigured",
    413: "image_too_large", 422: "bad_request",
}

FAILURE_MESSAGES: dict[str, str] = {
    # Asynchronous failures reported by Luma (state: failed).
    "content_moderated": "Luma's content policy flagged the prompt or the image, so nothing was made "
                         "(and nothing was charged). Try rewording the prompt.",
    "generation_failed": "Luma could not generate this image, even after a retry (nothing was charged). "
                         "Please try again in a moment.",
    "budget_exhausted": "The workspace's Luma balance is used up. Please tell a workspace admin to top "
                        "up the Luma account.",
    "output_not_found": "Luma finished but lost the image, even after a retry (nothing was charged). "
                        "Please try again.",
    "image_too_large": "The input image is too large for Luma. Try a smaller image.",
    "unsupported_format": "Luma cannot read the input image's format. Try a PNG or JPEG.",
    "corrupt_input": "Luma could not read the input image (it seems to be corrupt).",
    "invalid_request": "Luma refused the request as invalid. Check the prompt and flags "
                       "(`/luma help`).",
    "rate_limited": "Luma is overloaded right now and refused the image twice. Please try again in "
                    "a few minutes.",
    # Synchronous errors and lumabot's own reasons.
    "out_of_balance": "The workspace's Luma account is out of balance, so nothing was generated. "
                      "Please tell a workspace admin to top it up.",
    "misconfigured": "lumabot is misconfigured: Luma refused its API key. Please tell a workspace "
                     "admin (the details are in lumabot's log).",
    "own_key_refused": "Luma refused this workspace's own Luma key (revoked, or its account suspended), "
                       "so nothing was generated. A workspace admin can set a new one with "
                       "`/luma admin luma-key`, or remove it to use the shared one.",
    "luma_key_removed": "This workspace's own Luma key was removed before the image was finished, so "
                        "lumabot cannot reach it any more (nothing more will be charged to it). Please "
                        "try again: new images use the key the workspace has now.",
    "bad_request": "Luma refused the request",
    "timeout": "The image was not ready in time, so lumabot gave up waiting. Please try again.",
    "submit_uncertain": "Luma did not answer when the image was requested. To avoid paying twice, "
                        "lumabot did not resend it. Please try again.",
    "create_uncertain": "lumabot was restarted twice while asking Luma for this image, so whether "
                        "Luma made it is uncertain. To avoid paying again, lumabot did not ask a "
                        "third time. If no image arrives, please try again.",
    "luma_unavailable": "Luma is unavailable right now. Please try again in a few minutes.",
    "download_failed": "The image was made but could not be downloaded from Luma. Please try again.",
    "delivery_failed": "The image was made but could not be posted to Slack. Please try again.",
    "not_in_channel": "lumabot is not a member of this channel. Invite it with `/invite @lumabot` and "
                      "try again.",
    # Input images people share.
    "image_no_access": "lumabot cannot open that file: Slack did not give it access. Share the file "
                       "in a channel lumabot is in (or invite it with `/invite @lumabot`) and try again.",
    "image_too_big": "That file is larger than 50 MB. lumabot edits images up to 50 MB: please share "
                     "a smaller one.",
    "image_download_failed": "The image could not be downloaded from Slack. Please try again.",
    "image_untrusted_host": "lumabot only downloads files from Slack itself, and this file points "
                            "somewhere else, so it was not opened. Upload the image to Slack and "
                            "try again.",
    "not_an_image": "That file is not an image lumabot can read. Try a PNG, JPEG, WebP or GIF.",
    "image_bomb": "That image has far too many pixels to process safely. Please share a smaller one.",
    "image_unreadable": "That image seems to be damaged: lumabot could not read it.",
    "preset_deleted": "The preset this image used was deleted (or changed) before the image was made, "
                      "and its reference images went with it. Please ask again.",
}

# Slack errors that mean the workspace's settings forbid what lumabot tried (final: retrying
# cannot help), and what that setting is, for the person and the admin who can change it.
POLICY_MESSAGES: dict[str, str] = {
    "restricted_action": "this workspace's settings do not let lumabot post in this channel",
    "restricted_action_read_only_channel": "this channel is read-only",
    "restricted_action_thread_only_channel": "this channel only allows replies in threads, so "
                                             "lumabot cannot start a thread here (mention @lumabot "
                                             "in a thread instead)",
    "restricted_action_non_threadable_channel": "this channel does not allow threads",
    "is_archived": "this channel is archived",
    "msg_blocks_too_long": "Slack refused the message as too long",
    "messages_tab_disabled": "lumabot's Messages tab is turned off in this workspace",
    "ekm_access_denied": "the workspace's encryption key settings (EKM) deny access",
    "file_upload_size_restricted": "the workspace limits the size of uploaded files",
    "storage_limit_reached": "the workspace has used up its file storage",
    "file_uploads_disabled": "file uploads are turned off in this workspace",
    "file_uploads_except_images_disabled": "file uploads are restricted in this workspace",
    "file_type_not_allowed": "the workspace does not allow this type of file",
    "posting_to_channel_denied": "the workspace does not let lumabot share files in this channel",
}


def policy_message(error: str | None) -> str:
    what = POLICY_MESSAGES.get(error or "", "this workspace's settings do not allow it")
    return (f"lumabot could not post here: {what} (Slack said `{error}`). Nothing more was "
            "tried. A workspace admin can change this setting.")


# Codes whose detail (a sentence for users) is shown instead of the generic message.
_DETAILED = {"not_an_image", "image_bomb", "image_unreadable"}

FALLBACK_MESSAGE = "Something went wrong while making this image. Please try again."


def failure_message(code: str | None, detail: str | None = None) -> str:
    """The sentence a user sees for a failure code (with Luma's detail for a 400)."""
    if code == "slack_policy":
        return policy_message(detail)
    text = FAILURE_MESSAGES.get(code or "", FALLBACK_MESSAGE)
    if code in _DETAILED and detail:
        return detail
    if code == "bad_request":
        text = f"{text}: {detail}" if detail else f"{text}."
    return text
