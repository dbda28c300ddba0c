"""A real SMTP server for atalaya's mail tests: aiosmtpd (Debian's python3-aiosmtpd) with
its Maildir handler, plus what the tests check.

Each stored message gets two headers: X-Test-TLS (yes when the session was encrypted, by
STARTTLS or implicit TLS) and X-Test-Auth (the login, when the client authenticated). Beside
the Maildir, DIR/../decoded/N.json holds the N-th message decoded (subject, threading
headers, text and HTML parts, envelope), so tests need not decode MIME themselves.

Usage: smtpd.py --port P --maildir DIR [--tls CERT KEY] [--implicit]
                [--user NAME --password-file FILE]
With --tls and without --implicit, STARTTLS is offered and required before MAIL; with
--user, AUTH is required (and, as aiosmtpd does by default, only over TLS).
"""

import argparse
import asyncio
import email.header
import json
import os
import ssl

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler(Mailbox):
    def __init__(self, maildir):
        super().__init__(maildir)
        self.decoded = os.path.join(os.path.dirname(maildir), "decoded")
        os.makedirs(self.decoded, exist_ok=True)
        self.count = 0

    def decode(self, message, envelope, encrypted, login):
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                charset = part.get_content_charset() or "utf-8"
                payload = part.get_payload(decode=True).decode(charset)
                parts[part.get_content_type()] = payload
        subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
        return {
            "subject": subject,
            "message_id": message["Message-ID"],
            "in_reply_to": message["In-Reply-To"],
            "references": message["References"],
            "content_type": message.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": encrypted,
            "auth": login,
        }

    async def handle_DATA(self, server, session, envelope):
        encrypted = session.ssl is not None or (
            server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None
        )
        message = self.prepare_message(session, envelope)
        message["X-Test-TLS"] = "yes" if encrypted else "no"
        login = ""
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        message["X-Test-Auth"] = login
        self.handle_message(message)
        decoded = self.decode(message, envelope, encrypted, login)
        path = os.path.join(self.decoded, "%04d.json" % self.count)
        self.count += 1
        with open(path + ".tmp", "w") as f:
            json.dump(decoded, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit", action="store_true")
    parser.add_argument("--user")
    parser.add_argument("--password-file")
    args = parser.parse_args()

    context = None
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls[0], args.tls[1])

    authenticator = None
    if args.user:
        with open(args.password_file) as f:
            password = f.read().strip()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == args.user
                and auth_data.password.decode() == password
            )
            # `handled=False`: aiosmtpd answers 535 itself when the login fails.
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

    handler = Handler(args.maildir)

    def factory():
        return SMTP(
            handler,
            hostname="smtp.test",
            tls_context=None if args.implicit else context,
            require_starttls=bool(context) and not args.implicit,
            authenticator=authenticator,
            auth_required=authenticator is not None,
            auth_require_tls=True,
        )

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            factory,
            host="127.0.0.1",
            port=args.port,
            ssl=context if args.implicit else None,
        )
    )
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
