//! `ha:` — high availability on NATS JetStream (see `crate::ha`). Absent: one replica, no
//! NATS needed, exactly as without it.

use std::time::Duration;

use super::reader::{Anchor, Ctx, Table, duration, integer, string};
use crate::ha::HaConfig;
use crate::ha::config::is_valid_name;

/// `ha:`, when present.
pub(super) fn read_ha(root: &mut Table, ctx: &mut Ctx) -> Option<HaConfig> {
    if !root.has("ha") {
        root.take("ha");
        return None;
    }
    let mut h = root.section(ctx, "ha");
    let (servers, mut nats) = super::connectors::read_nats_connection(&mut h, ctx);
    if nats.name.is_empty() || nats.name == "atalaya" {
        nats.name = "atalaya-ha".to_owned();
    }
    let mut c = HaConfig::new(nats);
    let name = |h: &mut Table, ctx: &mut Ctx, key: &'static str, target: &mut String| {
        if let Some(v) = h.get(ctx, key, string) {
            if is_valid_name(&v) {
                *target = v;
            } else {
                ctx.error(
                    &h.full(key),
                    h.last.as_ref(),
                    Anchor::Value,
                    "use 1 to 64 letters, digits, `-` or `_` (it names NATS subjects and keys)",
                );
            }
        }
    };
    name(&mut h, ctx, "cluster", &mut c.cluster);
    name(&mut h, ctx, "replica", &mut c.replica);
    name(&mut h, ctx, "bucket", &mut c.bucket);
    name(&mut h, ctx, "stream", &mut c.stream);
    if !is_valid_name(&c.replica) {
        // From the host name: keep what a NATS key can hold.
        c.replica = c
            .replica
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
    }
    if let Some(v) = h.get(ctx, "nats_replicas", |v| integer(v, 1, 5)) {
        c.nats_replicas = v;
    }
    let lease_ttl = h.get(ctx, "lease_ttl", duration);
    if let Some(v) = lease_ttl {
        c.lease_ttl = v;
    }
    let renew = h.get(ctx, "renew_interval", duration);
    if let Some(v) = renew {
        c.renew_interval = v;
    }
    if let Some(v) = h.get(ctx, "poll_interval", duration) {
        c.poll_interval = v;
    }
    if let Some(v) = h.get(ctx, "max_clock_skew", duration) {
        c.max_clock_skew = v;
    }
    if let Some(v) = h.get(ctx, "snapshot_every", |v| integer(v, 1, 1 << 30)) {
        c.snapshot_every = v as u64;
    }
    if let Some(v) = h.get(ctx, "stream_max_messages", |v| integer(v, 1000, 1 << 40)) {
        c.stream_max_messages = v as i64;
    }
    if let Some(v) = h.get(ctx, "advertise_url", string) {
        if v.starts_with("http://") || v.starts_with("https://") {
            c.advertise_url = Some(v);
        } else {
            ctx.error(
                &h.full("advertise_url"),
                h.last.as_ref(),
                Anchor::Value,
                "expected an http:// or https:// URL",
            );
        }
    }
    if c.lease_ttl < Duration::from_secs(3) {
        ctx.error(
            &h.full("lease_ttl"),
            None,
            Anchor::Key,
            "the lease must last at least 3s",
        );
    } else if c.renew_interval.is_zero() || c.renew_interval * 2 > c.lease_ttl {
        ctx.error(
            &h.full("renew_interval"),
            None,
            Anchor::Key,
            format!(
                "renew at least twice per lease (lease_ttl {:?}, renew_interval {:?}): one lost renewal must not depose the leader",
                c.lease_ttl, c.renew_interval
            ),
        );
    }
    if c.poll_interval.is_zero() {
        ctx.error(
            &h.full("poll_interval"),
            None,
            Anchor::Key,
            "must be above 0",
        );
    }
    h.finish(ctx);
    servers.map(|_| c)
}
