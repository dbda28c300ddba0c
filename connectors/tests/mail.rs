//! The mail sender against a real SMTP server (aiosmtpd, Debian's python3-aiosmtpd) on
//! loopback: what arrives (subject, text and HTML parts, escaping), threading headers, and
//! the transport — STARTTLS with authentication, implicit TLS, a plain local relay — and a
//! password that never shows.

#![cfg(feature = "mail")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use atalaya_bus::Labels;
use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
use atalaya_connectors::mail::{EmailConfig, MailTls};
use atalaya_connectors::mail::{MailSender, thread_id};
use atalaya_connectors::templates::Locale;
use atalaya_test_kit::smtp::{ServerTls, Smtpd, header};
use atalaya_test_kit::{CapturedLogs, make_certs};

const PASSWORD: &str = "s3cret-SMTP-pa55word";

fn config(port: u16, tls: MailTls) -> EmailConfig {
    EmailConfig {
        to: vec!["admin@home.lan".to_owned(), "Ana <ana@home.lan>".to_owned()],
        from: "atalaya <atalaya@home.lan>".to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        hello: None,
        auth_username: None,
        auth_password: None,
        tls,
        require_tls: true,
        ca_file: None,
        server_name: None,
        insecure_skip_verify: false,
        headers: BTreeMap::from([("X-Priority".to_owned(), "1".to_owned())]),
        subject: None,
        text: None,
        html: None,
        locale: Locale::En,
        timeout: Duration::from_secs(10),
    }
}

fn notification(id: &str, status: Status) -> Notification {
    let labels = Labels::from([
        ("alertname".to_owned(), "freezer_warm".to_owned()),
        ("severity".to_owned(), "critical".to_owned()),
        ("room".to_owned(), "kitchen".to_owned()),
    ]);
    let alert = NotifiedAlert {
        instant: false,
        status,
        fingerprint: "a1".to_owned(),
        labels: labels.clone(),
        annotations: Labels::from([
            (
                "summary".to_owned(),
                "Freezer <too> warm & rising".to_owned(),
            ),
            ("description".to_owned(), "It is at -2 °C.".to_owned()),
        ]),
        starts_at: "2026-01-10T10:00:00Z".parse().unwrap(),
        ends_at: (status == Status::Resolved).then(|| "2026-01-10T10:30:00Z".parse().unwrap()),
        value: serde_json::json!(-2),
        generator_url: Some("http://grafana.home/d/1?a=1&b=2".to_owned()),
    };
    Notification {
        id: id.to_owned(),
        receiver: "admin".to_owned(),
        integration: 0,
        group_key: "{}:{alertname=\"freezer_warm\"}".to_owned(),
        status,
        group_labels: Labels::from([("alertname".to_owned(), "freezer_warm".to_owned())]),
        common_labels: labels,
        common_annotations: Default::default(),
        alerts: vec![alert],
        created_at: "2026-01-10T10:05:00Z".parse().unwrap(),
        silent: false,
    }
}

/// Waits (the server writes files as it receives) until `n` mails arrived.
async fn wait_for_mails(server: &Smtpd, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + atalaya_test_kit::PATIENCE;
    loop {
        let mails = server.decoded();
        if mails.len() >= n {
            return mails;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} mails arrived:\n{}",
            mails.len(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn password_file(dir: &Path) -> SecretSource {
    let path = dir.join("smtp-password");
    std::fs::write(&path, format!("{PASSWORD}\n")).unwrap();
    SecretSource::File(path)
}

#[tokio::test]
async fn firing_and_resolved_mails_thread_together_over_starttls_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let server = Smtpd::start(
        ServerTls::StartTls {
            cert: &certs.server_cert,
            key: &certs.server_key,
        },
        Some(("atalaya", PASSWORD)),
    )
    .await;
    let mut config = config(server.port, MailTls::StartTls);
    config.ca_file = Some(certs.ca.clone());
    config.auth_username = Some("atalaya".to_owned());
    config.auth_password = Some(password_file(dir.path()));
    let sender = MailSender::default();
    let firing = notification("0f1e2d3c4b5a6978", Status::Firing);
    let resolved = notification("8796a5b4c3d2e1f0", Status::Resolved);
    sender
        .send(&config, &firing, "http://atalaya.home")
        .await
        .unwrap();
    sender
        .send(&config, &resolved, "http://atalaya.home")
        .await
        .unwrap();

    let mails = wait_for_mails(&server, 2).await;
    let thread = thread_id(&firing, "home.lan");
    assert!(
        thread.starts_with("<group-") && thread.ends_with("@home.lan>"),
        "{thread}"
    );
    for (mail, id) in mails.iter().zip(["0f1e2d3c4b5a6978", "8796a5b4c3d2e1f0"]) {
        assert_eq!(mail["tls"], true, "STARTTLS was used");
        assert_eq!(mail["auth"], "atalaya");
        assert_eq!(mail["content_type"], "multipart/alternative");
        assert_eq!(mail["message_id"], format!("<{id}@home.lan>"));
        assert_eq!(mail["in_reply_to"], thread.as_str());
        assert_eq!(mail["references"], thread.as_str());
        assert_eq!(mail["mail_from"], "atalaya@home.lan");
        assert_eq!(
            mail["rcpt_tos"],
            serde_json::json!(["admin@home.lan", "ana@home.lan"])
        );
    }
    assert_eq!(mails[0]["subject"], "🔴 Freezer <too> warm & rising");
    assert_eq!(
        mails[1]["subject"],
        "✅ Freezer <too> warm & rising — resolved"
    );
    let text = mails[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Firing for 5m, since 2026-01-10 10:00 UTC"),
        "{text}"
    );
    assert!(text.contains("Where: kitchen"), "{text}");
    assert!(
        text.contains("Source: http://grafana.home/d/1?a=1&b=2"),
        "{text}"
    );
    assert!(text.contains("atalaya · http://atalaya.home"), "{text}");
    let html = mails[0]["html"].as_str().unwrap();
    assert!(
        html.contains("Freezer &lt;too&gt; warm &amp; rising"),
        "{html}"
    );
    assert!(
        html.contains("href=\"http://grafana.home/d/1?a=1&amp;b=2\""),
        "{html}"
    );
    let resolved_text = mails[1]["text"].as_str().unwrap();
    assert!(
        resolved_text.contains("Resolved after 30m"),
        "{resolved_text}"
    );

    // The Maildir holds the mails as sent, with their threading headers.
    let raw = server.mails();
    assert_eq!(raw.len(), 2);
    assert_eq!(header(&raw[0], "X-Test-TLS").as_deref(), Some("yes"));
    assert_eq!(
        header(&raw[1], "Message-ID").as_deref(),
        Some("<8796a5b4c3d2e1f0@home.lan>")
    );
    assert_eq!(header(&raw[1], "In-Reply-To"), Some(thread.clone()));
    assert_eq!(header(&raw[1], "References"), Some(thread));
    assert_eq!(header(&raw[0], "X-Priority").as_deref(), Some("1"));
    assert!(header(&raw[0], "Subject").is_some());
}

#[tokio::test]
async fn implicit_tls_and_a_plain_local_relay_deliver_in_spanish() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let smtps = Smtpd::start(
        ServerTls::Implicit {
            cert: &certs.server_cert,
            key: &certs.server_key,
        },
        None,
    )
    .await;
    let relay = Smtpd::start(ServerTls::None, None).await;
    let sender = MailSender::default();

    let mut implicit = config(smtps.port, MailTls::Implicit);
    implicit.ca_file = Some(certs.ca.clone());
    implicit.locale = Locale::Es;
    sender
        .send(&implicit, &notification("n1", Status::Firing), "")
        .await
        .unwrap();
    let mails = wait_for_mails(&smtps, 1).await;
    assert_eq!(mails[0]["tls"], true);
    let text = mails[0]["text"].as_str().unwrap();
    assert!(text.contains("Activa desde hace 5 min"), "{text}");

    let mut plain = config(relay.port, MailTls::None);
    plain.subject = Some("[casa] {{ title }}".to_owned());
    sender
        .send(&plain, &notification("n2", Status::Firing), "")
        .await
        .unwrap();
    let mails = wait_for_mails(&relay, 1).await;
    assert_eq!(mails[0]["tls"], false);
    assert_eq!(mails[0]["subject"], "[casa] Freezer <too> warm & rising");
}

#[tokio::test]
async fn a_server_requiring_starttls_refuses_plain_text_and_an_untrusted_certificate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let server = Smtpd::start(
        ServerTls::StartTls {
            cert: &certs.server_cert,
            key: &certs.server_key,
        },
        None,
    )
    .await;
    let sender = MailSender::default();
    let plain = config(server.port, MailTls::None);
    let refused = sender
        .send(&plain, &notification("n1", Status::Firing), "")
        .await
        .unwrap_err();
    assert!(!refused.retryable(), "{refused}");
    assert_eq!(refused.kind(), "smtp_5xx");
    assert!(refused.to_string().contains("STARTTLS"), "{refused}");

    // Without the CA, the certificate is not trusted.
    let untrusted = config(server.port, MailTls::StartTls);
    let error = sender
        .send(&untrusted, &notification("n2", Status::Firing), "")
        .await
        .unwrap_err();
    assert!(error.retryable(), "{error}");
    assert!(server.decoded().is_empty());
}

#[tokio::test]
async fn the_password_never_shows_in_errors_or_logs() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let server = Smtpd::start(
        ServerTls::StartTls {
            cert: &certs.server_cert,
            key: &certs.server_key,
        },
        Some(("atalaya", "another-password")),
    )
    .await;
    let mut config = config(server.port, MailTls::StartTls);
    config.ca_file = Some(certs.ca.clone());
    config.auth_username = Some("atalaya".to_owned());
    config.auth_password = Some(password_file(dir.path()));
    config.subject = Some("{{ alerts[0].labels.nope }}".to_owned());
    let error = MailSender::default()
        .send(&config, &notification("n1", Status::Firing), "")
        .await
        .unwrap_err();
    assert!(
        !error.retryable(),
        "a wrong password is refused for good: {error}"
    );
    for text in [error.to_string(), format!("{error:?}"), logs.text()] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    // The failing subject template was reported, and the built-in one used.
    assert_eq!(
        logs.lines_with(&["An email template failed", "`subject`"])
            .len(),
        1,
        "{}",
        logs.text()
    );
}
