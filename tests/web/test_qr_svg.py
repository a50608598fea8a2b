"""The QR code filter draws the payload as an SVG and never echoes it into the markup."""

from __future__ import annotations

import segno

from piaowu.web.templatetags.web_tags import qr_svg


def test_qr_svg_draws_the_payload_as_modules_only() -> None:
    payload = 'weixin://wxpay/bizpayurl?pr=<script>alert("x")</script>'
    svg = str(qr_svg(payload))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "script" not in svg and "weixin" not in svg
    # The drawing is the QR code of exactly this payload.
    expected = segno.make(payload, error="m").svg_inline(scale=5, border=2, omitsize=True)
    assert svg == expected
    assert str(qr_svg("weixin://wxpay/bizpayurl?pr=other")) != svg
