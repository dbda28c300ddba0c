//! What Telegram and mail integrations share in the routing policy: the language of the
//! built-in templates (`locale`), and custom templates, checked when the policy compiles.

use atalaya_bus::delivery::IntegrationContext;
use atalaya_bus::yaml::Node;

use super::environment;

/// The variables a Telegram or mail template (`message`, `subject`, `text`, `html`) can
/// use: the notification as the built-in templates see it (`alerts` is a list of alerts,
/// each with `status`, `marker`, `name`, `summary`, `description`, `where`, `since`, `instant`,
/// `starts_at`, `ends_at`, `value`, `link`, `labels`, `annotations`).
pub const MESSAGE_TEMPLATE_VARIABLES: &[&str] = &[
    "status",
    "marker",
    "title",
    "receiver",
    "alerts",
    "firing",
    "resolved",
    "group_labels",
    "common_labels",
    "common_annotations",
    "external_url",
    "link",
    "locale",
];

/// The longest custom template, in bytes: a message, not a program.
const MAX_TEMPLATE_BYTES: usize = 8192;

pub use atalaya_bus::delivery::locale::Locale;

/// `locale:`, `en` (the default) or `es`.
pub fn locale(ctx: &mut IntegrationContext<'_>, node: &Node, locale: Option<&str>) -> Locale {
    match locale {
        None | Some("en") => Locale::En,
        Some("es") => Locale::Es,
        Some(other) => {
            let label = ctx.label;
            ctx.decoder.error(
                node.get("locale").map_or(node.position, |n| n.position),
                format!("{label}: `locale` must be `en` or `es`, not `{other}`"),
            );
            Locale::En
        }
    }
}

/// A custom template under `key` of a Telegram or email integration: it must compile and
/// use only the variables a notification gives ([`MESSAGE_TEMPLATE_VARIABLES`]).
pub fn message_template(
    ctx: &mut IntegrationContext<'_>,
    node: &Node,
    key: &str,
    source: Option<String>,
) -> Option<String> {
    let source = source?;
    let label = ctx.label;
    let position = node.get(key).map_or(node.position, |n| n.position);
    let d = &mut *ctx.decoder;
    if source.contains("{{ .") || source.contains("{{.") || source.contains("{{ template ") {
        d.error(
            position,
            format!(
                "{label}: `{key}` looks like an Alertmanager Go template; atalaya's \
                 templates are minijinja (Jinja2), e.g. `{{{{ title }}}}` — or leave \
                 `{key}` out for the built-in one"
            ),
        );
        return None;
    }
    if source.len() > MAX_TEMPLATE_BYTES {
        d.error(
            position,
            format!(
                "{label}: `{key}` template is too long: {} bytes, the limit is \
                 {MAX_TEMPLATE_BYTES}",
                source.len()
            ),
        );
        return None;
    }
    let env = environment();
    let template = match env.template_from_str(&source) {
        Ok(template) => template,
        Err(e) => {
            d.error(
                position,
                format!(
                    "{label}: `{key}` template, line {}: {}",
                    e.line().unwrap_or(1),
                    match e.detail() {
                        Some(detail) => format!("{}: {detail}", e.kind()),
                        None => e.kind().to_string(),
                    }
                ),
            );
            return None;
        }
    };
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !MESSAGE_TEMPLATE_VARIABLES.contains(&v.as_str()))
        .collect();
    unknown.sort();
    if let Some(first) = unknown.first() {
        d.error(
            position,
            format!(
                "{label}: `{key}` uses `{first}`, which a notification does not have; it has {}",
                MESSAGE_TEMPLATE_VARIABLES
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    }
    Some(source)
}
