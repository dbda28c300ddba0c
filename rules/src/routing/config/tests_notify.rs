//! `telegram_configs` and `email_configs`: defaults, Alertmanager's keys, atalaya's own, and
//! every mistake at its place — secrets written in the file above all.

use atalaya_connectors::notifiers::integration_kinds;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::tests::check;
use super::*;
use crate::routing::quiet::is_quiet;
use atalaya_bus::delivery::integration::{QuietConfig, QuietRule, SecretSource};
use atalaya_connectors::mail::{EmailConfig, MailTls};
use atalaya_connectors::telegram::{AllowedUser, OnResolve, Role, TelegramChat, TelegramConfig};
use atalaya_connectors::templates::Locale;

fn parse(text: &str) -> RoutingPolicy {
    parse_policy(text, Path::new("policy.yaml"), &integration_kinds()).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{}", errors.join("\n"))
    })
}

fn errors(text: &str) -> Vec<String> {
    match parse_policy(text, Path::new("policy.yaml"), &integration_kinds()) {
        Ok(_) => panic!("the policy compiled"),
        Err(errors) => errors
            .iter()
            .map(|e| e.to_string().trim_start_matches("policy.yaml:").to_owned())
            .collect(),
    }
}

const HOME: &str = r#"
global:
  smtp_from: atalaya@home.lan
  smtp_smarthost: mail.home.lan:587
  smtp_auth_username: atalaya
  smtp_auth_password_file: secrets/smtp
route: {receiver: family}
time_intervals:
  - name: night
    time_intervals: [{times: [{start_time: "22:00", end_time: "24:00"}]}]
receivers:
  - name: family
    telegram_configs:
      - bot_token_file: secrets/bot
        chat_id: -1001234567890
      - bot_token_env: ATALAYA_BOT_TOKEN
        chat_ids: [42, "@casa_alertas"]
        message_thread_id: 7
        api_url: http://127.0.0.1:8081/
        parse_mode: HTML
        disable_notifications: true
        send_resolved: false
        on_resolve: reply
        quiet: {severities: [info, warning], time_intervals: [night]}
        locale: es
        timeout: 5s
        message: "{{ marker }} <b>{{ title }}</b>"
        allowed_users: [{id: 111, role: silence}, {id: 222}]
        button_max_age: 2d
  - name: admin
    email_configs:
      - to: "admin@home.lan, Ana <ana@home.lan>"
      - to: ops@example.org
        from: "atalaya <atalaya@example.org>"
        smarthost: smtp.example.org:465
        hello: atalaya.example.org
        auth_username: ops
        auth_password_env: SMTP_PASSWORD
        tls_config: {ca_file: ca.pem, server_name: mail.example.org}
        headers: {X-Priority: 1}
        subject: "{{ title }}"
        text: "{{ status }}"
        html: "<p>{{ status }}</p>"
        send_resolved: true
        locale: es
      - to: root@localhost
        smarthost: localhost:25
        tls: none
"#;

#[test]
fn telegram_integrations_compile_with_defaults() {
    let policy = parse(HOME);
    let family = &policy.receiver("family").unwrap().integrations;
    check(
        &family[0],
        "telegram",
        true,
        TelegramConfig {
            bot_token: SecretSource::File("secrets/bot".into()),
            chats: vec![TelegramChat::Id(-1_001_234_567_890)],
            message_thread_id: None,
            api_url: "https://api.telegram.org".to_owned(),
            on_resolve: OnResolve::Edit,
            message: None,
            locale: Locale::En,
            timeout: Duration::from_secs(20),
            allowed_users: Vec::new(),
            button_max_age: atalaya_connectors::telegram::DEFAULT_BUTTON_MAX_AGE,
        },
    );
    assert_eq!(family[0].quiet, QuietConfig::default());
    check(
        &family[1],
        "telegram",
        false,
        TelegramConfig {
            bot_token: SecretSource::Env("ATALAYA_BOT_TOKEN".to_owned()),
            chats: vec![
                TelegramChat::Id(42),
                TelegramChat::Username("@casa_alertas".to_owned()),
            ],
            message_thread_id: Some(7),
            api_url: "http://127.0.0.1:8081".to_owned(),
            on_resolve: OnResolve::Reply,
            message: Some("{{ marker }} <b>{{ title }}</b>".to_owned()),
            locale: Locale::Es,
            timeout: Duration::from_secs(5),
            allowed_users: vec![
                AllowedUser {
                    id: 111,
                    role: Role::Silence,
                },
                AllowedUser {
                    id: 222,
                    role: Role::Read,
                },
            ],
            button_max_age: Duration::from_secs(2 * 24 * 3600),
        },
    );
    assert_eq!(
        family[1].quiet,
        QuietConfig {
            always: true,
            rules: vec![QuietRule {
                severities: vec!["info".to_owned(), "warning".to_owned()],
                time_intervals: vec!["night".to_owned()],
            }],
        }
    );
    assert!(TelegramChat::Id(-5).is_group());
    assert!(TelegramChat::Username("@x".into()).is_group());
    assert!(!TelegramChat::Id(42).is_group());
}

#[test]
fn email_integrations_take_the_global_smtp_defaults() {
    let policy = parse(HOME);
    let admin = &policy.receiver("admin").unwrap().integrations;
    check(
        &admin[0],
        "email",
        false,
        EmailConfig {
            to: vec!["admin@home.lan".to_owned(), "Ana <ana@home.lan>".to_owned()],
            from: "atalaya@home.lan".to_owned(),
            host: "mail.home.lan".to_owned(),
            port: 587,
            hello: None,
            auth_username: Some("atalaya".to_owned()),
            auth_password: Some(SecretSource::File("secrets/smtp".into())),
            tls: MailTls::StartTls,
            require_tls: true,
            ca_file: None,
            server_name: None,
            insecure_skip_verify: false,
            headers: BTreeMap::new(),
            subject: None,
            text: None,
            html: None,
            locale: Locale::En,
            timeout: Duration::from_secs(30),
        },
    );
    let second = admin[1].settings::<EmailConfig>().expect("email");
    assert_eq!(second.tls, MailTls::Implicit, "port 465 is implicit TLS");
    assert_eq!(
        second.auth_password,
        Some(SecretSource::Env("SMTP_PASSWORD".into()))
    );
    assert_eq!(second.ca_file.as_deref(), Some(Path::new("ca.pem")));
    assert_eq!(second.server_name.as_deref(), Some("mail.example.org"));
    assert_eq!(second.headers["X-Priority"], "1");
    assert_eq!(second.subject.as_deref(), Some("{{ title }}"));
    assert!(admin[1].send_resolved);
    assert_eq!(second.locale, Locale::Es);
    let third = admin[2].settings::<EmailConfig>().expect("email");
    assert_eq!(third.tls, MailTls::None);
    assert_eq!((third.host.as_str(), third.port), ("localhost", 25));
}

#[test]
fn secret_files_are_read_next_to_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, HOME).unwrap();
    let policy = load_policy(&path, &integration_kinds()).unwrap();
    let telegram = policy.receiver("family").unwrap().integrations[0]
        .settings::<TelegramConfig>()
        .expect("telegram");
    assert_eq!(
        telegram.bot_token,
        SecretSource::File(dir.path().join("secrets/bot"))
    );
    let email = policy.receiver("admin").unwrap().integrations[1]
        .settings::<EmailConfig>()
        .expect("email");
    assert_eq!(email.ca_file, Some(dir.path().join("ca.pem")));
    // Where a secret comes from may be shown; never what it is.
    assert_eq!(
        format!("{:?}", telegram.bot_token),
        format!("file {}", dir.path().join("secrets/bot").display())
    );
}

#[test]
fn telegram_mistakes_are_reported_at_their_place() {
    let text = r#"
route: {receiver: r}
time_intervals: [{name: night}]
receivers:
  - name: r
    telegram_configs:
      - bot_token: "123456:ABC-secret"
        chat_id: 1
      - bot_token_file: /f
        bot_token_env: "123:abc"
        chat_id: family
      - bot_token_file: /f
        chat_ids: [1, "@ok_name", 1, "@x"]
        parse_mode: MarkdownV2
        on_resolve: delete
        message_thread_id: 0
        api_url: "ftp://x"
        quiet: [{time_intervals: [nigth]}, {}]
        locale: fr
        message: "{{ alerts | length }} {{ nope }}"
      - bot_token_file: /f
      - chat_id: 5
        message: "{{ .CommonLabels }}"
        http_config: {}
      - bot_token_file: /f
        chat_id: 6
        allowed_users: [{id: 7, role: admin}, {id: -100123}, {id: 8}, {id: 8, role: silence}]
        button_max_age: soon
"#;
    assert_eq!(
        errors(text),
        [
            "7:9: receiver `r`: `bot_token` would put a secret in the policy file; write the \
             token in a file named by `bot_token_file` (or name an environment variable \
             holding it with `bot_token_env`)",
            "10:9: receiver `r`: give `bot_token_file` or `bot_token_env`, not both",
            "11:18: receiver `r`: `family` is not a Telegram chat: write the chat's number \
             (negative for groups, e.g. -1001234567890) or a public channel's `@name`",
            "13:35: receiver `r`: chat `1` is listed twice",
            "13:38: receiver `r`: `@x` is not a Telegram chat: write the chat's number \
             (negative for groups, e.g. -1001234567890) or a public channel's `@name`",
            "14:21: receiver `r`: atalaya writes Telegram messages as HTML; `parse_mode` can \
             only be `HTML`, not `MarkdownV2`",
            "15:21: receiver `r`: `on_resolve` must be `edit`, `reply` or `new`, not `delete`",
            "16:28: receiver `r`: `message_thread_id` must be a topic's number, above 0",
            "17:18: receiver `r`: telegram `api_url` must be an http:// or https:// URL",
            "18:35: receiver `r`: quiet: unknown time interval `nigth`; define it under \
             `time_intervals:`; did you mean `night`?",
            "18:44: receiver `r`: a quiet rule needs `severities`, `time_intervals`, or both",
            "19:17: receiver `r`: `locale` must be `en` or `es`, not `fr`",
            "20:18: receiver `r`: `message` uses `nope`, which a notification does not have; \
             it has `status`, `marker`, `title`, `receiver`, `alerts`, `firing`, `resolved`, \
             `group_labels`, `common_labels`, `common_annotations`, `external_url`, `link`, \
             `locale`",
            "21:9: receiver `r`: a telegram integration needs `chat_id` (a chat's number or \
             `@channel`) or `chat_ids`",
            "22:9: receiver `r`: a secret is needed: `bot_token_file` (a file holding it) or \
             `bot_token_env` (an environment variable holding it)",
            "23:18: receiver `r`: `message` looks like an Alertmanager Go template; atalaya's \
             templates are minijinja (Jinja2), e.g. `{{ title }}` — or leave `message` out \
             for the built-in one",
            "24:9: receiver `r`: telegram `http_config` is not supported by atalaya yet; use \
             `api_url` to reach the Bot API through another address",
            "27:39: receiver `r`: a user's `role` is `read` or `silence`, not `admin`",
            "27:52: receiver `r`: `-100123` is not a Telegram user id: a person's id is a \
             positive number (the bot's /help shows yours)",
            "27:76: receiver `r`: user 8 is listed twice",
            "28:25: button_max_age: `soon` is not a duration; write it like `30s`, `5m`, \
             `1h30m` or `1d`: whole numbers with units y, w, d, h, m, s, ms, largest first",
        ]
    );
}

#[test]
fn email_mistakes_are_reported_at_their_place() {
    let text = r#"
global:
  smtp_auth_password: hunter2
route: {receiver: r}
receivers:
  - name: r
    email_configs:
      - to: admin@home.lan
        from: atalaya@home.lan
        smarthost: mail.home.lan
        auth_password: hunter2
        auth_secret: x
        tls: ssl
      - to: "nobody"
        from: atalaya@home.lan
        smarthost: localhost:25
        tls: none
        require_tls: true
        auth_password_file: /p
        headers: {Subject: x, "Bad Name": y}
        subject: "{% if %}"
      - {}
"#;
    assert_eq!(
        errors(text),
        [
            "3:3: `smtp_auth_password` would put a secret in the policy file; write the \
             password in a file named by `smtp_auth_password_file`",
            "10:20: receiver `r`: `smarthost` `mail.home.lan` must be `host:port`, e.g. \
             `smtp.example.org:587`",
            "11:9: receiver `r`: `auth_password` would put a secret in the policy file; write \
             the password in a file named by `auth_password_file` (or name an environment \
             variable holding it with `auth_password_env`)",
            "12:9: receiver `r`: `auth_secret` is not supported by atalaya (no CRAM-MD5); it \
             logs in with `auth_username` and the password (PLAIN or LOGIN)",
            "13:14: receiver `r`: `tls` must be `starttls`, `implicit` or `none`, not `ssl`",
            "14:9: receiver `r`: a password is given but no `auth_username`",
            "14:13: receiver `r`: `nobody` in `to` is not an email address",
            "18:22: receiver `r`: `require_tls: true` contradicts `tls: none`",
            "20:19: receiver `r`: header `Subject` is written by atalaya; set the subject with \
             `subject:` (a template)",
            "20:31: receiver `r`: `Bad Name` is not a header name",
            "21:18: receiver `r`: `subject` template, line 1: syntax error: unexpected end of \
             block",
            "22:9: receiver `r`: an email integration needs `to`: one or more addresses",
            "22:9: receiver `r`: an email integration needs `from` (or `smtp_from` under \
             `global:`)",
            "22:9: receiver `r`: an email integration needs `smarthost` (`host:port`, or \
             `smtp_smarthost` under `global:`)",
        ]
    );
}

#[test]
fn quiet_by_severity_or_time_interval() {
    use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
    let policy = parse(HOME);
    let mut quiet = policy.receiver("family").unwrap().integrations[1].clone();
    quiet.quiet.always = false;
    let notification = |severities: &[&str]| Notification {
        id: "n".into(),
        receiver: "family".into(),
        integration: 1,
        group_key: "{}:{}".into(),
        status: Status::Firing,
        group_labels: Default::default(),
        common_labels: Default::default(),
        common_annotations: Default::default(),
        alerts: severities
            .iter()
            .map(|s| NotifiedAlert {
                instant: false,
                status: Status::Firing,
                fingerprint: (*s).to_owned(),
                labels: [("severity".to_owned(), (*s).to_owned())].into(),
                annotations: Default::default(),
                starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                ends_at: None,
                value: serde_json::Value::Null,
                generator_url: None,
            })
            .collect(),
        created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        silent: false,
    };
    let day = "2026-01-05T12:00:00Z".parse().unwrap();
    let night = "2026-01-05T23:00:00Z".parse().unwrap();
    let intervals = &policy.time_intervals;
    // Both given: low severities at night.
    assert!(is_quiet(
        &quiet,
        &notification(&["info", "warning"]),
        intervals,
        night
    ));
    assert!(!is_quiet(
        &quiet,
        &notification(&["info", "warning"]),
        intervals,
        day
    ));
    assert!(!is_quiet(
        &quiet,
        &notification(&["info", "critical"]),
        intervals,
        night
    ));
    assert!(!is_quiet(
        &quiet,
        &notification(&["critical"]),
        intervals,
        night
    ));
    // Severities alone: always; intervals alone: everything inside them.
    let mut by_severity = quiet.clone();
    by_severity.quiet.rules[0].time_intervals.clear();
    assert!(is_quiet(
        &by_severity,
        &notification(&["info"]),
        intervals,
        day
    ));
    assert!(!is_quiet(
        &by_severity,
        &notification(&["critical"]),
        intervals,
        night
    ));
    let mut by_time = quiet.clone();
    by_time.quiet.rules[0].severities.clear();
    assert!(is_quiet(
        &by_time,
        &notification(&["critical"]),
        intervals,
        night
    ));
    assert!(!is_quiet(
        &by_time,
        &notification(&["info"]),
        intervals,
        day
    ));
    let mut never = quiet.clone();
    never.quiet = QuietConfig::default();
    assert!(!is_quiet(
        &never,
        &notification(&["info"]),
        intervals,
        night
    ));
    // Two rules: info always, anything but critical at night.
    let mut either = quiet.clone();
    either.quiet.rules = vec![
        QuietRule {
            severities: vec!["info".to_owned()],
            time_intervals: Vec::new(),
        },
        QuietRule {
            severities: vec!["info".to_owned(), "warning".to_owned()],
            time_intervals: vec!["night".to_owned()],
        },
    ];
    assert!(is_quiet(&either, &notification(&["info"]), intervals, day));
    assert!(!is_quiet(
        &either,
        &notification(&["warning"]),
        intervals,
        day
    ));
    assert!(is_quiet(
        &either,
        &notification(&["warning"]),
        intervals,
        night
    ));
    assert!(!is_quiet(
        &either,
        &notification(&["critical"]),
        intervals,
        night
    ));
    quiet.quiet.always = true;
    assert!(is_quiet(
        &quiet,
        &notification(&["critical"]),
        intervals,
        day
    ));
}
