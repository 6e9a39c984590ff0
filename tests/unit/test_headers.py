"""The header explainer reads a real-looking received message the way a teacher would explain it."""

from __future__ import annotations

from mailkit.clients.headers import explain

RECEIVED = b"""Return-Path: <alice@example.org>
Authentication-Results: outside.example.net; dmarc=pass (p=none dis=none) header.from=example.org
Authentication-Results: outside.example.net; dkim=pass (2048-bit key; unprotected) header.d=example.org
 header.i=@example.org header.a=rsa-sha256 header.s=s202611 header.b=AbCdEf
Authentication-Results: outside.example.net; spf=fail smtp.mailfrom=example.org
Received: from mail.example.org (mail.example.org [IPv6:2001:db8:100::25])
\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
\tby outside.example.net (Postfix) with ESMTPS id 6B3F5178712
\tfor <dana@example.net>; Wed, 25 Nov 2026 14:25:26 +0000 (UTC)
Received: from outside.example.net (outside.example.net [198.51.100.100])
\tby mail.example.org (Postfix) with ESMTPSA id 1D96817C482; Wed, 25 Nov 2026 14:25:25 +0000 (UTC)
Received: by mail.example.org (Postfix, from userid 0) id 1D96817C400; Wed, 25 Nov 2026 14:25:24 +0000 (UTC)
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s202611;
\th=from:to:subject; bh=abc=; b=def
Subject: hello

body
"""


def test_trace_verdicts_and_signature_in_plain_words() -> None:
    rows = explain(RECEIVED.replace(b"\n", b"\r\n")).rows
    says = [r.says for r in rows]
    assert says[0] == (
        "outside.example.net got it from mail.example.org [IPv6:2001:db8:100::25] with ESMTPS (SMTP over TLS), TLSv1.3"
    )
    assert says[1].endswith("with ESMTPSA (SMTP over TLS, sender logged in)")
    assert says[2].startswith("mail.example.org made it itself")
    assert "DMARC pass (From: example.org aligned" in says[3]
    assert "DKIM pass (signature by example.org (selector s202611))" in says[4]
    assert "SPF fail (the sending host may NOT send for example.org)" in says[5]
    assert rows[6].header == "DKIM-Signature" and "s=s202611 (selector" in says[6] and "b=def" not in says[6]
    shown = explain(RECEIVED)._repr_html_()
    assert shown.startswith("<table>") and "&lt;s&gt;._domainkey" in shown and "<s>" not in shown, "text is escaped"


def test_the_terminal_command_prints_the_same_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from mailkit.cli import main

    message = tmp_path / "message.eml"
    message.write_bytes(RECEIVED)
    shown = CliRunner().invoke(main, ["headers", str(message)])
    assert shown.exit_code == 0 and shown.output == str(explain(RECEIVED)) + "\n"
