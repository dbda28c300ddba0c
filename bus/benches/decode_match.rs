//! What ingesting a batch of events costs: decoding CloudEvents JSON, then matching every
//! event against the subject patterns of a household's rule files.
//!
//! Group `event_ingest`, throughput in events (elements) per second:
//! - `decode_only`: `decode_structured` over a 1000-event JSON batch, the baseline;
//! - `decode_and_match_100_patterns`: the same decode, then each event through 100 patterns
//!   in a linear scan with `capture_into`, as a naive engine would;
//! - `match_only_100_patterns`: only the scan, over events decoded beforehand.
//!
//! The batch and the patterns are built deterministically (no randomness between runs), so
//! results compare across commits. `scripts/bench` runs this and prints a summary.

use std::hint::black_box;
use std::time::Duration;

use atalaya_bus::cloudevents::{EventDefaults, decode_structured};
use atalaya_bus::event::DEFAULT_EVENT_TYPE;
use atalaya_bus::{Event, Pattern};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Events per batch body; also the throughput unit per iteration.
const BATCH_LEN: usize = 1000;

const ROOMS: [&str; 10] = [
    "kitchen", "living", "bedroom", "kids", "bathroom", "office", "hall", "garage", "attic",
    "basement",
];
const HOME_DEVICES: [&str; 6] = [
    "esp32-1",
    "esp32-2",
    "shelly-ht",
    "freezer",
    "fridge",
    "pico",
];
const HOME_METRICS: [&str; 4] = ["temperature", "humidity", "power", "motion"];
const NODES: [&str; 6] = ["pi1", "pi2", "pi3", "pi4", "nuc1", "nuc2"];
const NODE_CONDITIONS: [&str; 3] = ["ready", "memorypressure", "diskpressure"];
const NAMESPACES: [&str; 4] = ["monitoring", "home-automation", "media", "kube-system"];
const ZIGBEE_DEVICES: [&str; 8] = [
    "front_door",
    "back_door",
    "washing_machine_plug",
    "dryer_plug",
    "hall_motion",
    "bathroom_leak",
    "living_button",
    "garden_temp",
];
const SHELLIES: [&str; 3] = ["shellyplug-s-1", "shelly1pm-boiler", "shellyem-main"];

/// A small xorshift generator, so the batch varies without a `rand` dependency and is the
/// same on every run.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        // `n` is a small array length; the remainder always fits in usize.
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A reading with one decimal, in `[low, low + span)`.
    fn reading(&mut self, low: f64, span: u64) -> f64 {
        low + (self.next() % (span * 10)) as f64 / 10.0
    }
}

/// One event as a producer would send it, in CloudEvents structured JSON.
fn realistic_event(index: usize, rng: &mut Xorshift) -> Value {
    let time = format!(
        "2026-11-22T{:02}:{:02}:{:02}Z",
        index / 3600 % 24,
        index / 60 % 60,
        index % 60
    );
    let mut event = match index % 10 {
        // Home sensors (ESP32, Shelly H&T) over MQTT, forwarded as a batch: 40%.
        0..=3 => {
            let room = rng.pick(&ROOMS);
            let device = rng.pick(&HOME_DEVICES);
            let metric = rng.pick(&HOME_METRICS);
            let data = match metric {
                "temperature" => {
                    json!({"temperature": rng.reading(-22.0, 45), "battery": rng.below(100), "unit": "C"})
                }
                "humidity" => json!(rng.reading(30.0, 50)),
                "power" => {
                    json!({"power": rng.reading(0.0, 2400), "voltage": rng.reading(228.0, 6)})
                }
                _ => json!({"occupancy": rng.below(2) == 1, "illuminance": rng.below(800)}),
            };
            let mut event = json!({
                "specversion": "1.0",
                "source": format!("mqtt://mosquitto/{device}"),
                "type": "home.sensor.reading",
                "subject": format!("home/{room}/{device}/{metric}"),
                "time": time,
                "data": data,
            });
            if index.is_multiple_of(3) {
                event["labels"] = json!({"floor": rng.below(3), "owner": "household"});
            }
            if index.is_multiple_of(4) {
                event["room"] = json!(room);
            }
            event
        }
        // Kubernetes node conditions: 20%.
        4 | 5 => {
            let node = rng.pick(&NODES);
            let condition = rng.pick(&NODE_CONDITIONS);
            json!({
                "specversion": "1.0",
                "id": format!("node-{node}-{condition}-{index}"),
                "source": "/atalaya/kubernetes",
                "type": "io.k8s.node.condition",
                "subject": format!("k8s/node/{node}/{condition}"),
                "time": time,
                "data": {"status": if rng.below(10) == 0 { "False" } else { "True" }, "reason": "KubeletReady", "lastTransitionTime": time},
                "labels": {"arch": if node.starts_with("pi") { "arm64" } else { "amd64" }, "cluster": "home"},
            })
        }
        // Kubernetes pod phases: 10%.
        6 => {
            let namespace = rng.pick(&NAMESPACES);
            json!({
                "id": format!("pod-{index}"),
                "source": "/atalaya/kubernetes",
                "type": "io.k8s.pod.phase",
                "subject": format!("k8s/pod/{namespace}/app-{}/phase", rng.below(12)),
                "time": time,
                "data": {"phase": "Running", "restarts": rng.below(4), "node": rng.pick(&NODES)},
            })
        }
        // zigbee2mqtt device state and availability: 20%.
        7 | 8 => {
            let device = rng.pick(&ZIGBEE_DEVICES);
            if rng.below(4) == 0 {
                json!({
                    "subject": format!("zigbee2mqtt/{device}/availability"),
                    "data": "online",
                })
            } else {
                json!({
                    "source": "mqtt://mosquitto/zigbee2mqtt",
                    "type": "zigbee.state",
                    "subject": format!("zigbee2mqtt/{device}"),
                    "data": {"battery": rng.below(100), "linkquality": rng.below(255), "contact": rng.below(2) == 1, "voltage": 2900 + rng.below(300), "temperature": rng.reading(15.0, 10)},
                })
            }
        }
        // Shelly relays reporting power as plain numbers: 10%.
        _ => {
            let device = rng.pick(&SHELLIES);
            json!({
                "subject": format!("shellies/{device}/relay/0/power"),
                "time": time,
                "data": rng.reading(0.0, 3000),
                "labels": {"circuit": "c1"},
            })
        }
    };
    if index.is_multiple_of(7) {
        // Some producers send their own ids; the rest get a generated UUIDv7.
        event["id"] = json!(format!("evt-{index:06}"));
    }
    event
}

/// The JSON body of a batch of `BATCH_LEN` events.
fn batch_body() -> Vec<u8> {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let events: Vec<Value> = (0..BATCH_LEN)
        .map(|index| realistic_event(index, &mut rng))
        .collect();
    serde_json::to_vec(&events).expect("a serde_json::Value always serialises")
}

/// The subject patterns of a household's rule files: 100, of which a typical event matches
/// between 10 and 20.
fn household_patterns() -> Vec<Pattern> {
    let mut sources: Vec<String> = [
        // Catch-alls: archiving, debugging, the console receiver.
        "#",
        ">",
        "home/#",
        "home/>",
        "k8s/#",
        "k8s/>",
        "zigbee2mqtt/#",
        "shellies/#",
        "zigbee2mqtt/>",
        "+family/#",
        // Home sensors.
        "home/+room/+device/temperature",
        "home/+room/+device/humidity",
        "home/+room/+device/power",
        "home/+room/+device/motion",
        "home/+room/+device/+metric",
        "home/+room/+/+",
        "home/+room/#",
        "home/+room/>",
        "home/+room/freezer/temperature",
        "home/+room/fridge/temperature",
        "home/kitchen/freezer/temperature",
        "home/garage/freezer/temperature",
        "home/basement/+device/humidity",
        "home/bathroom/+device/humidity",
        "home/attic/+device/temperature",
        "home/+/+/motion",
        "home/+room/+device/battery",
        "home/+room/+device/>",
        "home/+room/esp32-1/#",
        "home/+room/esp32-2/#",
        // Kubernetes.
        "k8s/node/+node/ready",
        "k8s/node/+node/memorypressure",
        "k8s/node/+node/diskpressure",
        "k8s/node/+node/+condition",
        "k8s/node/>",
        "k8s/pod/+namespace/+pod/phase",
        "k8s/pod/monitoring/+pod/phase",
        "k8s/pod/kube-system/+pod/phase",
        "k8s/pod/#",
        "k8s/+kind/#",
        "k8s/event/+namespace/+reason",
        "k8s/+kind/+object/+field",
        // zigbee2mqtt.
        "zigbee2mqtt/+device",
        "zigbee2mqtt/+device/availability",
        "zigbee2mqtt/+device/#",
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/bridge/#",
        "zigbee2mqtt/front_door",
        "zigbee2mqtt/back_door",
        "zigbee2mqtt/washing_machine_plug",
        "zigbee2mqtt/dryer_plug",
        "zigbee2mqtt/bathroom_leak",
        "zigbee2mqtt/+device/set",
        // Shelly.
        "shellies/+device/relay/+relay/power",
        "shellies/+device/relay/+relay/energy",
        "shellies/+device/>",
        "shellies/+device/relay/#",
        "shellies/shelly1pm-boiler/relay/0/power",
        "shellies/shellyem-main/emeter/+channel/power",
        // Rules for sources that this batch does not exercise.
        "ups/+ups/battery/charge",
        "ups/+ups/status",
        "backup/+job/status",
        "backup/+job/#",
        "certs/+domain/expiry",
        "weather/+station/#",
        "speedtest/+isp/download",
        "frigate/+camera/person",
        "frigate/events",
        "tasmota/tele/+device/SENSOR",
        "tasmota/stat/+device/POWER",
        "atalaya/+component/health",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // One "everything in this room" rule and one temperature rule per room.
    for room in ROOMS {
        sources.push(format!("home/{room}/#"));
        sources.push(format!("home/{room}/+device/temperature"));
    }
    // Per-node readiness rules, as someone who wants a different route per node writes.
    for node in NODES {
        sources.push(format!("k8s/node/{node}/ready"));
    }
    // A few device-specific rules.
    for (room, device) in [
        ("kitchen", "fridge"),
        ("office", "pico"),
        ("living", "esp32-1"),
    ] {
        sources.push(format!("home/{room}/{device}/+metric"));
    }
    assert_eq!(
        sources.len(),
        100,
        "the scan is meant to cover 100 patterns"
    );
    sources
        .iter()
        .map(|source| Pattern::parse(source).expect("every benchmark pattern is valid"))
        .collect()
}

fn defaults() -> EventDefaults<'static> {
    EventDefaults {
        source: "/atalaya/http",
        event_type: DEFAULT_EVENT_TYPE,
        now: Timestamp::UNIX_EPOCH,
    }
}

/// Runs every event through every pattern, as a linear scan; returns the number of matches.
fn match_all(events: &mut [Event], patterns: &[Pattern]) -> usize {
    let mut matched = 0;
    for event in events {
        for pattern in patterns {
            if pattern.capture_into(black_box(&event.subject), &mut event.labels) {
                matched += 1;
            }
        }
    }
    matched
}

fn event_ingest(c: &mut Criterion) {
    let body = batch_body();
    let patterns = household_patterns();
    let decoded = decode_structured(&body, defaults()).expect("the benchmark batch decodes");
    assert_eq!(decoded.len(), BATCH_LEN);
    let matches = match_all(&mut decoded.clone(), &patterns);
    eprintln!(
        "event_ingest: batch body {} bytes, {BATCH_LEN} events, {} patterns, {:.1} matches per event ({:.0}% of patterns)",
        body.len(),
        patterns.len(),
        matches as f64 / BATCH_LEN as f64,
        100.0 * matches as f64 / (BATCH_LEN * patterns.len()) as f64,
    );

    let mut group = c.benchmark_group("event_ingest");
    group
        .throughput(Throughput::Elements(BATCH_LEN as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("decode_only", |b| {
        b.iter(|| decode_structured(black_box(&body), defaults()).expect("the batch decodes"));
    });

    group.bench_function("decode_and_match_100_patterns", |b| {
        b.iter(|| {
            let mut events =
                decode_structured(black_box(&body), defaults()).expect("the batch decodes");
            let matched = match_all(&mut events, black_box(&patterns));
            (events, matched)
        });
    });

    // Each iteration gets fresh copies of the decoded events (made outside the timing), so
    // captures land in labels just as they would after a real decode.
    group.bench_function("match_only_100_patterns", |b| {
        b.iter_batched_ref(
            || decoded.clone(),
            |events| match_all(events, black_box(&patterns)),
            BatchSize::LargeInput,
        );
    });

    group.finish();
}

criterion_group!(benches, event_ingest);
criterion_main!(benches);
