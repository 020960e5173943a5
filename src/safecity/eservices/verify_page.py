"""The public verifier page ``/verify`` (zh / en): scan a QR, see the verdict.

A hotel clerk or an officer opens ``/verify`` on a phone or a tablet and

* scans the holder's QR with the camera (``getUserMedia``; the page alone is allowed the
  camera, through its own ``Permissions-Policy``), or picks a photo of it: the QR is
  decoded **in the browser** by the vendored jsQR (``/console/static/vendor/jsqr``; no
  CDN), and the text is posted to ``POST /api/eservices/verify``;
* or pastes the text (``SC1:...`` or an SD-JWT presentation) into the text box: a plain
  HTML form posted to ``POST /verify``, so it works without JavaScript.

The verdict is shown big, with its colour and word (VALID / REVOKED / SUSPENDED / EXPIRED
/ STATUS-STALE / INVALID), the reason, the "as of" time of the status, and only the claims
of the QR's purpose profile. Behaviour is in ``static/console/verify.js`` (the strict CSP
allows no inline script); its texts come from ``data-*`` attributes of the page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from safecity.console.pages import _translator, render
from safecity.eservices import verification
from safecity.eservices.credentials import PROFILES, Verdict
from safecity.platform.ratelimit import rate_limit
from safecity.platform.runtime import get_runtime
from safecity.security.rbac import public

PATH = "/verify"
TEMPLATE = "eservices_verify/verify.html"
MAX_IMAGE_BYTES = 8 * 1024 * 1024
PERMISSIONS = "camera=(self), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
limited = [Depends(rate_limit("eservices-verify", per_minute=600, burst=120))]

MESSAGES: dict[str, dict[str, str]] = {
    "title": {"zh": "电子证照核验", "en": "Verify an e-certificate"},
    "intro": {
        "zh": "扫描持证人出示的二维码，或粘贴核验文本。核验结果只显示该用途允许的信息。",
        "en": "Scan the holder's QR code or paste its text. Only what the purpose allows is shown.",
    },
    "scan": {"zh": "用摄像头扫描", "en": "Scan with the camera"},
    "stop": {"zh": "停止扫描", "en": "Stop scanning"},
    "pick": {"zh": "选择二维码图片", "en": "Pick a QR image"},
    "text_label": {"zh": "二维码文本或出示凭证", "en": "QR text or presentation"},
    "submit": {"zh": "核验", "en": "Verify"},
    "profile": {"zh": "核验用途", "en": "Purpose"},
    "profile_any": {"zh": "按二维码所载用途", "en": "As the QR says"},
    "no_camera": {
        "zh": "无法使用摄像头，请选择图片或粘贴文本。",
        "en": "The camera is not available: pick an image or paste the text.",
    },
    "no_qr": {
        "zh": "图片中未找到二维码，请重拍或粘贴文本。",
        "en": "No QR code found in this image: take another photo or paste the text.",
    },
    "not_image": {"zh": "所选文件不是图片。", "en": "The chosen file is not an image."},
    "too_big": {
        "zh": "图片过大（上限 8 MB）。",
        "en": "The image is too large (limit 8 MB).",
    },
    "busy": {"zh": "正在核验…", "en": "Verifying…"},
    "failed": {"zh": "核验服务暂不可用，请稍后重试。", "en": "Verification failed; try again."},
    "reason": {"zh": "说明", "en": "Reason"},
    "as_of": {"zh": "状态截至", "en": "Status as of"},
    "expires": {"zh": "有效期至", "en": "Valid until"},
    "type": {"zh": "证照类型", "en": "Certificate type"},
    "VALID": {"zh": "有效", "en": "VALID"},
    "REVOKED": {"zh": "已撤销", "en": "REVOKED"},
    "SUSPENDED": {"zh": "已暂停", "en": "SUSPENDED"},
    "EXPIRED": {"zh": "已过期", "en": "EXPIRED"},
    "STATUS-STALE": {"zh": "状态过旧", "en": "STATUS STALE"},
    "INVALID": {"zh": "无效", "en": "INVALID"},
    "claim.family_name": {"zh": "姓", "en": "Family name"},
    "claim.given_name": {"zh": "名", "en": "Given name"},
    "claim.id_last4": {"zh": "身份证号后四位", "en": "ID number (last 4)"},
    "claim.id_number": {"zh": "公民身份号码", "en": "ID number"},
    "claim.birthdate": {"zh": "出生日期", "en": "Date of birth"},
    "claim.age_over_18": {"zh": "已满18周岁", "en": "Aged 18 or over"},
    "claim.certificate_number": {"zh": "证书编号", "en": "Certificate number"},
    "claim.address": {"zh": "住址", "en": "Address"},
    "claim.attributes": {"zh": "证照信息", "en": "Certificate details"},
}


def messages(lang: str) -> dict[str, str]:
    """This page's texts in ``lang`` (zh / en)."""
    return {key: texts.get(lang, texts["en"]) for key, texts in MESSAGES.items()}


def _claim_rows(claims: dict[str, Any], m: dict[str, str]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in claims.items():
        if isinstance(value, dict):
            text = "; ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, bool):
            text = "✓" if value else "✗"
        else:
            text = str(value)
        rows.append((m.get(f"claim.{key}", key), text))
    return rows


def _page(
    request: Request,
    *,
    verdict: Verdict | None = None,
    text: str = "",
    profile: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    lang = _translator(request).lang
    m = messages(lang)
    view = verification.verdict_dict(verdict) if verdict is not None else None
    response = render(
        request,
        TEMPLATE,
        status_code=status_code,
        m=m,
        verdict=view,
        claim_rows=_claim_rows(view["claims"], m) if view else [],
        text=text,
        profile=profile,
        profiles=[(p.name, p.title_zh if lang == "zh" else p.title_en) for p in PROFILES.values()],
        max_image_bytes=MAX_IMAGE_BYTES,
    )
    response.headers["Permissions-Policy"] = PERMISSIONS
    return response


@router.get(PATH, response_class=HTMLResponse)
def verify_form(request: Request) -> HTMLResponse:
    return _page(request)


@router.post(PATH, response_class=HTMLResponse, dependencies=limited)
def verify_submit(
    request: Request,
    text: Annotated[str, Form(max_length=verification.MAX_TEXT)] = "",
    profile: Annotated[str, Form(max_length=32)] = "",
) -> HTMLResponse:
    runtime = get_runtime(request)
    cache = verification.cache_for(runtime.sessions, runtime.settings.effective_key_dir)
    chosen = profile if profile in PROFILES else ""
    verdict = verification.verify_text(text, cache=cache, profile=chosen or None)
    return _page(request, verdict=verdict, text=text[:2000], profile=chosen)
