//! What the built-in templates write, in both languages, and how values are escaped.

use atalaya_bus::Labels;
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};

use super::*;

fn alert(name: &str, severity: &str, status: Status, minutes: i64) -> NotifiedAlert {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), name.into());
    labels.insert("severity".into(), severity.into());
    NotifiedAlert {
        instant: false,
        status,
        fingerprint: format!("{name}-{minutes}"),
        labels,
        annotations: Default::default(),
        starts_at: "2026-01-10T10:00:00Z".parse().unwrap(),
        ends_at: (status == Status::Resolved).then(|| {
            "2026-01-10T10:00:00Z".parse::<jiff::Timestamp>().unwrap()
                + jiff::SignedDuration::from_mins(minutes)
        }),
        value: serde_json::Value::Null,
        generator_url: None,
    }
}

fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
    let status = if alerts.iter().any(|a| a.status == Status::Firing) {
        Status::Firing
    } else {
        Status::Resolved
    };
    let common = |f: fn(&NotifiedAlert) -> &Labels| {
        let mut maps = alerts.iter().map(f);
        let mut common = maps.next().cloned().unwrap_or_default();
        for m in maps {
            common.retain(|k, v| m.get(k) == Some(v));
        }
        common
    };
    Notification {
        id: "n1".into(),
        receiver: "family".into(),
        integration: 0,
        group_key: "{}:{alertname=\"x\"}".into(),
        status,
        group_labels: Labels::new(),
        common_labels: common(|a| &a.labels),
        common_annotations: common(|a| &a.annotations),
        alerts,
        created_at: "2026-01-10T10:05:00Z".parse().unwrap(),
        silent: false,
    }
}

fn freezer() -> NotifiedAlert {
    let mut a = alert("freezer_warm", "critical", Status::Firing, 0);
    a.labels.insert("room".into(), "kitchen".into());
    a.labels.insert("device".into(), "freezer".into());
    a.annotations
        .insert("summary".into(), "Freezer too warm".into());
    a.annotations.insert(
        "description".into(),
        "The freezer is at -2 °C; it should be below -15 °C.".into(),
    );
    a.value = serde_json::json!(-2.04);
    a.generator_url = Some("http://grafana.home/d/freezer?a=1&b=2".into());
    a
}

fn render(part: MessagePart, locale: Locale, n: &Notification) -> String {
    let rendered = MessageTemplates::default().render(part, locale, None, n, "");
    assert_eq!(rendered.custom_error, None);
    rendered.text
}

#[test]
fn one_alert_reads_at_a_glance_in_english_and_spanish() {
    let n = notification(vec![freezer()]);
    assert_eq!(
        render(MessagePart::TelegramHtml, Locale::En, &n),
        "🔴 <b>Freezer too warm</b>\n\
         📍 kitchen · freezer\n\
         🕐 for 5m · value -2.04\n\
         <i>The freezer is at -2 °C; it should be below -15 °C.</i>\n\
         🔗 <a href=\"http://grafana.home/d/freezer?a=1&amp;b=2\">open</a>"
    );
    assert_eq!(
        render(MessagePart::TelegramHtml, Locale::Es, &n),
        "🔴 <b>Freezer too warm</b>\n\
         📍 kitchen · freezer\n\
         🕐 desde hace 5 min · valor -2.04\n\
         <i>The freezer is at -2 °C; it should be below -15 °C.</i>\n\
         🔗 <a href=\"http://grafana.home/d/freezer?a=1&amp;b=2\">abrir</a>"
    );
    assert_eq!(
        render(MessagePart::MailSubject, Locale::En, &n),
        "🔴 Freezer too warm"
    );
}

#[test]
fn push_messages_are_short_plain_text_in_english_and_spanish() {
    let n = notification(vec![freezer()]);
    assert_eq!(
        render(MessagePart::PushText, Locale::En, &n),
        "📍 kitchen · freezer\n\
         🕐 for 5m · value -2.04\n\
         The freezer is at -2 °C; it should be below -15 °C."
    );
    assert_eq!(
        render(MessagePart::PushText, Locale::Es, &n),
        "📍 kitchen · freezer\n\
         🕐 desde hace 5 min · valor -2.04\n\
         The freezer is at -2 °C; it should be below -15 °C."
    );
    let disk = |node: &str, status, minutes| {
        let mut a = alert("disk_filling", "warning", status, minutes);
        a.labels.insert("node".into(), node.into());
        a
    };
    let group = notification(vec![
        disk("pi1", Status::Firing, 0),
        disk("pi3", Status::Resolved, 62),
    ]);
    assert_eq!(
        render(MessagePart::PushText, Locale::En, &group),
        "🟠 disk_filling\n📍 pi1\n🕐 for 5m\n\n✅ disk_filling\n📍 pi3\n✅ resolved after 1h 2m"
    );
    let resolved = notification(vec![disk("pi3", Status::Resolved, 62)]);
    assert_eq!(
        render(MessagePart::PushText, Locale::Es, &resolved),
        "📍 pi3\n✅ resuelta tras 1 h 2 min"
    );
}

#[test]
fn a_group_lists_its_alerts_separated_by_blank_lines() {
    let disk = |node: &str, severity, status, minutes| {
        let mut a = alert("disk_filling", severity, status, minutes);
        a.labels.insert("node".into(), node.into());
        a
    };
    let n = notification(vec![
        disk("pi1", "warning", Status::Firing, 0),
        disk("pi2", "critical", Status::Firing, 0),
        disk("pi3", "warning", Status::Resolved, 62),
    ]);
    assert_eq!(
        render(MessagePart::TelegramHtml, Locale::En, &n),
        "🔴 <b>disk_filling</b> · 2 firing, 1 resolved\n\
         \n\
         🟠 <b>disk_filling</b>\n\
         📍 pi1\n\
         🕐 for 5m\n\
         \n\
         🔴 <b>disk_filling</b>\n\
         📍 pi2\n\
         🕐 for 5m\n\
         \n\
         ✅ <s>disk_filling</s>\n\
         📍 pi3\n\
         ✅ resolved after 1h 2m"
    );
    assert_eq!(
        render(MessagePart::MailSubject, Locale::Es, &n),
        "🔴 disk_filling (2 activas, 1 resuelta)"
    );
    let resolved = notification(vec![disk("pi3", "warning", Status::Resolved, 62)]);
    assert_eq!(
        render(MessagePart::TelegramHtml, Locale::Es, &resolved),
        "✅ <b>disk_filling</b> · resuelta\n📍 pi3\n✅ resuelta tras 1 h 2 min"
    );
    assert_eq!(
        render(MessagePart::MailSubject, Locale::En, &resolved),
        "✅ disk_filling — resolved"
    );
}

#[test]
fn every_value_is_escaped_in_html_and_left_alone_in_text() {
    let mut a = freezer();
    a.annotations
        .insert("summary".into(), "<script>\"x\" & 'y'</script>".into());
    a.labels.insert("room".into(), "R&D <lab>".into());
    let n = notification(vec![a]);
    let html = render(MessagePart::TelegramHtml, Locale::En, &n);
    assert!(
        html.starts_with(
            "🔴 <b>&lt;script&gt;&quot;x&quot; &amp; 'y'&lt;/script&gt;</b>\n📍 R&amp;D &lt;lab&gt;"
        ),
        "{html}"
    );
    let mail_html = render(MessagePart::MailHtml, Locale::En, &n);
    assert!(mail_html.contains("R&amp;D &lt;lab&gt;"), "{mail_html}");
    assert!(!mail_html.contains("<script>"), "{mail_html}");
    let text = render(MessagePart::MailText, Locale::En, &n);
    assert!(text.contains("Where: R&D <lab> · freezer"), "{text}");
}

#[test]
fn mail_text_shows_everything_known() {
    let n = notification(vec![freezer()]);
    assert_eq!(
        render(MessagePart::MailText, Locale::En, &n),
        "🔴 Freezer too warm\n\
         \n\
         🔴 Freezer too warm\n   \
         Firing for 5m, since 2026-01-10 10:00 UTC\n   \
         Where: kitchen · freezer\n   \
         Value: -2.04\n   \
         The freezer is at -2 °C; it should be below -15 °C.\n   \
         Labels: alertname=freezer_warm, device=freezer, room=kitchen, severity=critical\n   \
         Source: http://grafana.home/d/freezer?a=1&b=2\n\
         \n\
         --\n\
         atalaya"
    );
}

#[test]
fn a_custom_template_is_used_and_a_failing_one_falls_back() {
    let templates = MessageTemplates::default();
    let n = notification(vec![freezer()]);
    let custom = templates.render(
        MessagePart::TelegramHtml,
        Locale::En,
        Some("{{ marker }} {{ title }} ({{ alerts[0].labels.room }})"),
        &n,
        "",
    );
    assert_eq!(custom.text, "🔴 Freezer too warm (kitchen)");
    let failing = templates.render(
        MessagePart::TelegramHtml,
        Locale::En,
        Some("{{ alerts[0].labels.nope }}"),
        &n,
        "",
    );
    assert!(failing.text.starts_with("🔴 <b>Freezer too warm</b>"));
    assert!(
        failing
            .custom_error
            .as_deref()
            .unwrap()
            .contains("undefined"),
        "{failing:?}"
    );
    let empty = templates.render(MessagePart::MailSubject, Locale::En, Some("  "), &n, "");
    assert_eq!(empty.text, "🔴 Freezer too warm");
    assert!(empty.custom_error.is_some());
}

#[test]
fn the_context_has_exactly_the_documented_variables() {
    let n = notification(vec![freezer()]);
    let ctx = context(&n, "http://atalaya.home", Locale::En);
    let mut keys: Vec<&str> = ctx
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut documented = MESSAGE_TEMPLATE_VARIABLES.to_vec();
    keys.sort_unstable();
    documented.sort_unstable();
    assert_eq!(keys, documented);
    assert_eq!(ctx["link"], "http://atalaya.home");
}

#[test]
fn every_builtin_template_renders_every_shape() {
    let shapes = [
        notification(vec![freezer()]),
        notification(vec![alert("x", "", Status::Firing, 0)]),
        notification(vec![alert("x", "info", Status::Resolved, 3)]),
        notification(vec![
            alert("a", "info", Status::Firing, 0),
            alert("b", "warning", Status::Resolved, 1),
        ]),
    ];
    for n in &shapes {
        for part in [
            MessagePart::TelegramHtml,
            MessagePart::MailSubject,
            MessagePart::MailText,
            MessagePart::MailHtml,
        ] {
            for locale in [Locale::En, Locale::Es] {
                let text = render(part, locale, n);
                assert!(!text.trim().is_empty(), "{part:?} {locale:?}");
            }
        }
    }
}

/// A one-shot alert happened at one moment: every built-in text says when, in both
/// languages, never "for" the group wait; a payload as the value is not shown, a true is.
#[test]
fn a_one_shot_alert_says_when_it_happened_and_payloads_stay_out() {
    let mut leak = alert("water_leak", "critical", Status::Firing, 0);
    leak.instant = true;
    leak.labels.insert("device".into(), "leak_kitchen".into());
    leak.annotations
        .insert("summary".into(), "Water leak at leak_kitchen!".into());
    leak.value = serde_json::json!({"water_leak": true, "battery": 97, "linkquality": 120});
    let n = notification(vec![leak.clone()]);
    let cases = [
        (
            MessagePart::TelegramHtml,
            Locale::En,
            "🕐 2026-01-10 10:00 UTC",
        ),
        (
            MessagePart::TelegramHtml,
            Locale::Es,
            "🕐 2026-01-10 10:00 UTC",
        ),
        (MessagePart::PushText, Locale::En, "🕐 2026-01-10 10:00 UTC"),
        (MessagePart::PushText, Locale::Es, "🕐 2026-01-10 10:00 UTC"),
        (
            MessagePart::MailText,
            Locale::En,
            "Happened at 2026-01-10 10:00 UTC",
        ),
        (
            MessagePart::MailText,
            Locale::Es,
            "Ocurrió el 2026-01-10 10:00 UTC",
        ),
        (
            MessagePart::MailHtml,
            Locale::En,
            "<div>Happened at 2026-01-10 10:00 UTC</div>",
        ),
        (
            MessagePart::MailHtml,
            Locale::Es,
            "<div>Ocurrió el 2026-01-10 10:00 UTC</div>",
        ),
    ];
    for (part, locale, when) in cases {
        let text = render(part, locale, &n);
        assert!(text.contains(when), "{part:?} {locale:?}:\n{text}");
        for wrong in [
            "for 5m",
            "desde hace",
            "Firing for",
            "Activa",
            "battery",
            "linkquality",
        ] {
            assert!(
                !text.contains(wrong),
                "{part:?} {locale:?} says {wrong:?}:\n{text}"
            );
        }
    }
    leak.value = serde_json::json!(true);
    let text = render(MessagePart::PushText, Locale::En, &notification(vec![leak]));
    assert!(text.contains("· value true"), "{text}");
}
