//! `mqtt:`, `nats:`, `kubernetes:` and `homeassistant:` — the connectors that are sources,
//! each present only when configured (and only in builds with its cargo feature).

#[cfg(feature = "homeassistant")]
use atalaya_connectors::homeassistant::config::{Endpoint, HomeAssistantConfig};
#[cfg(feature = "kubernetes")]
use atalaya_connectors::kubernetes::config::{EventsApi, KubernetesConfig};
#[cfg(feature = "mqtt")]
use atalaya_connectors::mqtt::config::{MqttConfig, MqttSubscription, Protocol};
#[cfg(feature = "nats")]
use atalaya_connectors::nats::config::{JetStreamConsumer, NatsAuth, NatsConfig, NatsSubscription};
use atalaya_connectors::tls::TlsConfig;

use super::reader::{
    Anchor, Ctx, Table, boolean, duration, integer, path, pattern, secret, secret_and_file, string,
};

/// `tls:` of a connector.
fn read_tls(parent: &mut Table, ctx: &mut Ctx) -> Option<TlsConfig> {
    if !parent.has("tls") {
        parent.take("tls");
        return None;
    }
    let mut t = parent.section(ctx, "tls");
    let tls = TlsConfig {
        ca_file: t.get(ctx, "ca_file", path),
        cert_file: t.get(ctx, "cert_file", path),
        key_file: t.get(ctx, "key_file", path),
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        ctx.error(
            &t.full("cert_file"),
            None,
            Anchor::Key,
            "cert_file and key_file go together",
        );
    }
    t.finish(ctx);
    Some(tls)
}

/// `mqtt:`, when present.
#[cfg(feature = "mqtt")]
pub(super) fn read_mqtt(root: &mut Table, ctx: &mut Ctx) -> Option<MqttConfig> {
    if !root.has("mqtt") {
        root.take("mqtt");
        return None;
    }
    let mut m = root.section(ctx, "mqtt");
    let host = m.get(ctx, "host", string);
    let host = m.require(ctx, "host", host);
    // Read on without a host, so every other mistake is reported too.
    let mut c = MqttConfig::new(host.clone().unwrap_or_default());
    c.tls = read_tls(&mut m, ctx);
    if c.tls.is_some() {
        c.port = 8883;
    }
    if let Some(v) = m.get(ctx, "port", |v| integer(v, 1, 65_535)) {
        c.port = v as u16;
    }
    if let Some(v) = m.get(ctx, "client_id", string) {
        c.client_id = v;
    }
    c.username = m.get(ctx, "username", string);
    c.password = secret(&mut m, ctx, "password", "password_file");
    if let Some(v) = m.get(ctx, "keep_alive", duration) {
        c.keep_alive = v;
    }
    if let Some(v) = m.get(ctx, "clean_session", boolean) {
        c.clean_session = v;
    }
    for mut s in m.list(ctx, "subscriptions") {
        let topic = s.get(ctx, "topic", pattern);
        let qos = s.get(ctx, "qos", |v| integer(v, 0, 2)).unwrap_or(1) as u8;
        if let Some(pattern) = s.require(ctx, "topic", topic) {
            c.subscriptions.push(MqttSubscription { pattern, qos });
        }
        s.finish(ctx);
    }
    if let Some(v) = m.get(ctx, "max_payload_bytes", |v| integer(v, 1, 64 << 20)) {
        c.max_payload_bytes = v;
    }
    if let Some(v) = m.get(ctx, "status_topic", string) {
        c.status_topic = (!v.is_empty()).then_some(v);
    }
    let mut r = m.section(ctx, "reconnect");
    if let Some(v) = r.get(ctx, "min", duration) {
        c.reconnect_min = v;
    }
    if let Some(v) = r.get(ctx, "max", duration) {
        c.reconnect_max = v;
    }
    r.finish(ctx);
    if let Some(v) = m.get(ctx, "required_for_ready", boolean) {
        c.required_for_ready = v;
    }
    if let Some(v) = m.get(ctx, "max_inflight", |v| integer(v, 1, 65_535)) {
        c.max_inflight = v as u16;
    }
    if let Some(v) = m.get(ctx, "protocol", |v| match string(v)?.as_str() {
        "3.1.1" | "4" => Ok(Protocol::V311),
        "5" | "5.0" => Ok(Protocol::V5),
        other => Err(format!("`{other}` is not an MQTT version: use 3.1.1 or 5")),
    }) {
        c.protocol = v;
    }
    if let Some(v) = m.get(ctx, "session_expiry", duration) {
        c.session_expiry = v;
    }
    c.discovery = read_discovery(&mut m, ctx, &c.client_id);
    m.finish(ctx);
    host.map(|_| c)
}

/// `mqtt.homeassistant:` — Home Assistant discovery, when `discovery: true`.
#[cfg(feature = "mqtt")]
fn read_discovery(
    mqtt: &mut Table,
    ctx: &mut Ctx,
    client_id: &str,
) -> Option<atalaya_connectors::mqtt::config::DiscoveryConfig> {
    if !mqtt.has("homeassistant") {
        mqtt.take("homeassistant");
        return None;
    }
    let mut h = mqtt.section(ctx, "homeassistant");
    let enabled = h.get(ctx, "discovery", boolean).unwrap_or(false);
    let mut d = atalaya_connectors::mqtt::config::DiscoveryConfig::new(client_id);
    if let Some(v) = h.get(ctx, "discovery_prefix", string) {
        d.discovery_prefix = v;
    }
    if let Some(v) = h.get(ctx, "device_id", string) {
        d.device_id = v;
    }
    if let Some(v) = h.get(ctx, "device_name", string) {
        d.device_name = v;
    }
    if let Some(v) = h.get(ctx, "state_prefix", string) {
        d.state_prefix = v;
    }
    if let Some(v) = h.get(ctx, "silence_buttons", boolean) {
        d.silence_buttons = v;
    }
    for (key, problem) in d.problems() {
        ctx.error(&h.full(key), None, Anchor::Value, problem);
    }
    h.finish(ctx);
    enabled.then_some(d)
}

/// `nats:`, when present.
#[cfg(feature = "nats")]
pub(super) fn read_nats(root: &mut Table, ctx: &mut Ctx) -> Option<NatsConfig> {
    if !root.has("nats") {
        root.take("nats");
        return None;
    }
    let mut n = root.section(ctx, "nats");
    let (servers, mut c) = read_nats_connection(&mut n, ctx);
    for mut s in n.list(ctx, "subscriptions") {
        let subject = s.get(ctx, "subject", pattern);
        let queue_group = s.get(ctx, "queue_group", string);
        if let Some(pattern) = s.require(ctx, "subject", subject) {
            c.subscriptions.push(NatsSubscription {
                pattern,
                queue_group,
            });
        }
        s.finish(ctx);
    }
    for mut j in n.list(ctx, "jetstream") {
        let stream = j.get(ctx, "stream", string);
        let durable = j.get(ctx, "durable", string);
        let filter = j.get(ctx, "filter", pattern);
        let create = j.get(ctx, "create", boolean);
        let ack_wait = j.get(ctx, "ack_wait", duration);
        let max_ack_pending = j.get(ctx, "max_ack_pending", |v| integer(v, 1, 1 << 20));
        let nak_delay = j.get(ctx, "nak_delay", duration);
        let stream = j.require(ctx, "stream", stream);
        let durable = j.require(ctx, "durable", durable);
        if let (Some(stream), Some(durable)) = (stream, durable) {
            let mut consumer = JetStreamConsumer::new(stream, durable);
            consumer.filter = filter;
            consumer.create = create.unwrap_or(consumer.create);
            consumer.ack_wait = ack_wait.unwrap_or(consumer.ack_wait);
            consumer.max_ack_pending =
                max_ack_pending.map_or(consumer.max_ack_pending, |v| v as i64);
            consumer.nak_delay = nak_delay.unwrap_or(consumer.nak_delay);
            c.jetstream.push(consumer);
        }
        j.finish(ctx);
    }
    if let Some(v) = n.get(ctx, "max_payload_bytes", |v| integer(v, 1, 64 << 20)) {
        c.max_payload_bytes = v;
    }
    if let Some(v) = n.get(ctx, "max_pending", |v| integer(v, 1, 1 << 24)) {
        c.max_pending = v;
    }
    if let Some(v) = n.get(ctx, "required_for_ready", boolean) {
        c.required_for_ready = v;
    }
    if let Some(v) = n.get(ctx, "publish_jetstream", boolean) {
        c.publish_jetstream = v;
    }
    n.finish(ctx);
    servers.map(|_| c)
}

/// The connection keys of a NATS section (`nats:`, `ha:`): servers, name, auth, TLS. The
/// servers are `None` (and an error recorded) when missing.
#[cfg(feature = "nats")]
pub(super) fn read_nats_connection(
    n: &mut Table,
    ctx: &mut Ctx,
) -> (Option<Vec<String>>, NatsConfig) {
    let servers: Option<Vec<String>> = n.get(ctx, "servers", |v| {
        v.clone()
            .into_array()
            .map_err(|_| "expected a list of URLs such as nats://127.0.0.1:4222".to_owned())?
            .iter()
            .map(string)
            .collect()
    });
    let servers = n.require(ctx, "servers", servers.filter(|s| !s.is_empty()));
    let mut c = NatsConfig::new(String::new());
    c.servers = servers.clone().unwrap_or_default();
    if let Some(v) = n.get(ctx, "name", string) {
        c.name = v;
    }
    let token = secret(n, ctx, "token", "token_file");
    let user = n.get(ctx, "user", string);
    let password = secret(n, ctx, "password", "password_file");
    let nkey = secret(n, ctx, "nkey_seed", "nkey_seed_file");
    let creds = n.get(ctx, "credentials_file", path);
    let chosen = [
        token.is_some(),
        user.is_some(),
        nkey.is_some(),
        creds.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        ctx.error(
            &n.full("token"),
            None,
            Anchor::Key,
            "choose one of token, user/password, nkey_seed or credentials_file",
        );
    }
    c.auth = match (token, user, password, nkey, creds) {
        (Some(t), ..) => NatsAuth::Token(t),
        (_, Some(user), Some(password), ..) => NatsAuth::UserPassword { user, password },
        (_, Some(_), None, ..) => {
            ctx.error(
                &n.full("user"),
                None,
                Anchor::Key,
                "user needs password_file or ATALAYA__NATS__PASSWORD",
            );
            NatsAuth::None
        }
        (_, _, _, Some(seed), _) => NatsAuth::NKey(seed),
        (_, _, _, _, Some(file)) => NatsAuth::CredentialsFile(file),
        _ => NatsAuth::None,
    };
    c.tls = read_tls(n, ctx);
    (servers, c)
}

/// A list of non-empty strings (`[Warning]`, `[media, home]`).
#[cfg(feature = "kubernetes")]
fn strings(value: &config::Value) -> Result<Vec<String>, String> {
    let items = value
        .clone()
        .into_array()
        .map_err(|_| "expected a list of strings, such as [a, b]".to_owned())?;
    items
        .iter()
        .map(|item| match string(item)? {
            s if s.trim().is_empty() => Err("an item of the list is empty".to_owned()),
            s => Ok(s),
        })
        .collect()
}

/// `events.apis`: a non-empty list of `v1` and `events.k8s.io/v1`.
#[cfg(feature = "kubernetes")]
fn events_apis(value: &config::Value) -> Result<Vec<EventsApi>, String> {
    let names = strings(value)?;
    if names.is_empty() {
        return Err("name at least one API (v1, events.k8s.io/v1)".to_owned());
    }
    let mut apis = Vec::new();
    for name in names {
        let Some((_, api)) = EventsApi::ALL.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "unknown Events API {name:?}; expected v1 or events.k8s.io/v1"
            ));
        };
        if !apis.contains(api) {
            apis.push(*api);
        }
    }
    Ok(apis)
}

/// `kubernetes:`, when present (`kubernetes: {}` watches everything with the defaults).
#[cfg(feature = "kubernetes")]
pub(super) fn read_kubernetes(root: &mut Table, ctx: &mut Ctx) -> Option<KubernetesConfig> {
    if !root.has("kubernetes") {
        root.take("kubernetes");
        return None;
    }
    let mut k = root.section(ctx, "kubernetes");
    let mut c = KubernetesConfig {
        kubeconfig: k.get(ctx, "kubeconfig", path),
        context: k.get(ctx, "context", string).filter(|s| !s.is_empty()),
        ..KubernetesConfig::default()
    };
    if let Some(v) = k.get(ctx, "namespaces", strings) {
        c.namespaces = v;
    }
    let mut w = k.section(ctx, "watches");
    let watches = &mut c.watches;
    for (key, flag) in [
        ("nodes", &mut watches.nodes),
        ("leases", &mut watches.leases),
        ("pods", &mut watches.pods),
        ("events", &mut watches.events),
    ] {
        if let Some(v) = w.get(ctx, key, boolean) {
            *flag = v;
        }
    }
    if !(watches.nodes || watches.leases || watches.pods || watches.events) {
        ctx.error(
            &k.full("watches"),
            None,
            Anchor::Key,
            "every watch is off; remove `kubernetes:` to turn the bridge off",
        );
    }
    w.finish(ctx);
    let mut e = k.section(ctx, "events");
    let events = &mut c.events;
    if let Some(v) = e.get(ctx, "apis", events_apis) {
        events.apis = v;
    }
    if let Some(v) = e.get(ctx, "types", strings) {
        events.types = v;
    }
    for (key, list) in [
        ("include_reasons", &mut events.include_reasons),
        ("exclude_reasons", &mut events.exclude_reasons),
        ("involved_kinds", &mut events.involved_kinds),
        ("namespaces", &mut events.namespaces),
    ] {
        if let Some(v) = e.get(ctx, key, strings) {
            *list = v;
        }
    }
    e.finish(ctx);
    let mut p = k.section(ctx, "pods");
    if let Some(v) = p.get(ctx, "pending_after", duration) {
        c.pods.pending_after = v;
    }
    p.finish(ctx);
    let mut l = k.section(ctx, "leases");
    c.leases.stale_after = l.get(ctx, "stale_after", duration);
    l.finish(ctx);
    let mut r = k.section(ctx, "reconnect");
    if let Some(v) = r.get(ctx, "min", duration) {
        c.reconnect.0 = v;
    }
    if let Some(v) = r.get(ctx, "max", duration) {
        c.reconnect.1 = v;
    }
    r.finish(ctx);
    if let Some(v) = k.get(ctx, "required_for_ready", boolean) {
        c.required_for_ready = v;
    }
    k.finish(ctx);
    Some(c)
}

/// `homeassistant:`, when present.
#[cfg(feature = "homeassistant")]
pub(super) fn read_homeassistant(root: &mut Table, ctx: &mut Ctx) -> Option<HomeAssistantConfig> {
    if !root.has("homeassistant") {
        root.take("homeassistant");
        return None;
    }
    let mut h = root.section(ctx, "homeassistant");
    let endpoint = h.get(ctx, "url", |v| Endpoint::parse(&string(v)?));
    let endpoint = h.require(ctx, "url", endpoint);
    let token_given = h.has("token") || h.has("token_file");
    let token = secret_and_file(&mut h, ctx, "token", "token_file");
    if !token_given {
        ctx.error(
            &root.full("homeassistant"),
            None,
            Anchor::Key,
            "a long-lived access token is required: set token_file, or ATALAYA__HOMEASSISTANT__TOKEN",
        );
    }
    // Read on without a URL or token, so every other mistake is reported too.
    let mut c = HomeAssistantConfig::new(
        endpoint.clone().unwrap_or(Endpoint {
            url: String::new(),
            source: String::new(),
            tls: false,
        }),
        atalaya_bus::secret::Secret::new(String::new()),
    );
    if let Some(v) = h.get(ctx, "entities", |v| {
        v.clone()
            .into_array()
            .map_err(|_| "expected a list of subject patterns, such as [ha/sensor/>]".to_owned())?
            .iter()
            .map(pattern)
            .collect::<Result<Vec<_>, String>>()
    }) {
        c.entities = v;
    }
    let mut r = h.section(ctx, "reconnect");
    if let Some(v) = r.get(ctx, "min", duration) {
        c.reconnect_min = v;
    }
    if let Some(v) = r.get(ctx, "max", duration) {
        c.reconnect_max = v;
    }
    r.finish(ctx);
    if let Some(v) = h.get(ctx, "heartbeat", duration) {
        c.heartbeat = v;
    }
    if let Some(v) = h.get(ctx, "required_for_ready", boolean) {
        c.required_for_ready = v;
    }
    c.tls = read_tls(&mut h, ctx);
    if let Some(v) = h.get(ctx, "max_frame_bytes", |v| integer(v, 1024, 256 << 20)) {
        c.max_frame_bytes = v;
    }
    h.finish(ctx);
    let (token, token_file) = token?;
    c.token = token;
    c.token_file = token_file;
    endpoint.map(|_| c)
}
