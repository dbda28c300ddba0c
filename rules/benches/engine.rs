//! Engine throughput: events decoded and evaluated against 10, 100 and 1000 rules over 10 000
//! series, beside decoding alone (the baseline) in the same run.
//!
//! Run: `cargo bench -p atalaya-rules --bench engine` (or `scripts/bench`).

use std::hint::black_box;
use std::time::Duration;

use atalaya_bus::cloudevents::{EventDefaults, decode_structured};
use atalaya_rules::compile::compile_files;
use atalaya_rules::engine::Engine;
use atalaya_rules::files::RuleFile;
use atalaya_rules::metrics::EngineMetrics;
use atalaya_rules::yaml::parse_documents;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};

const SERIES: usize = 10_000;
const BATCH: usize = 1_000;
const ROOMS: usize = 1_000;

/// 10 000 series: 1000 rooms × 10 sensors, temperatures as CloudEvents JSON batches.
fn batches() -> Vec<Vec<u8>> {
    (0..SERIES / BATCH)
        .map(|b| {
            let events: Vec<serde_json::Value> = (0..BATCH)
                .map(|i| {
                    let n = b * BATCH + i;
                    serde_json::json!({
                        "specversion": "1.0",
                        "subject": format!("home/room{}/sensor{}/temperature", n % ROOMS, n / ROOMS),
                        "source": "/bench",
                        "data": {"celsius": 15.0 + (n % 20) as f64, "battery": 90},
                    })
                })
                .collect();
            serde_json::to_vec(&events).unwrap()
        })
        .collect()
}

/// `n` rules: two broad ones over every sensor, the rest one room each (so an event matches
/// at most three, whatever `n`), with a mix of kinds.
fn rules(n: usize) -> String {
    let mut yaml = String::from("rules:\n");
    yaml.push_str("  - name: any_hot\n    subject: home/+room/+sensor/temperature\n    value: data.celsius\n    condition: value > 33\n    for: 5m\n    annotations:\n      summary: \"{{ labels.room }}/{{ labels.sensor }} at {{ value }}\"\n");
    yaml.push_str(
        "  - name: any_silent\n    subject: home/+room/+sensor/temperature\n    absent_for: 30m\n",
    );
    for i in 0..n.saturating_sub(2) {
        let room = i % ROOMS;
        match i % 3 {
            0 => yaml.push_str(&format!("  - name: room{i}_cold\n    subject: home/room{room}/+sensor/temperature\n    value: data.celsius\n    condition: value < {}\n    clear_condition: value > {}\n", 10 + i % 5, 12 + i % 5)),
            1 => yaml.push_str(&format!("  - name: room{i}_avg\n    subject: home/room{room}/+sensor/temperature\n    value: data.celsius\n    window: {{duration: 5m, aggregate: avg}}\n    condition: value > {}\n", 30 + i % 5)),
            _ => yaml.push_str(&format!("  - name: room{i}_battery\n    subject: home/room{room}/+sensor/#\n    condition: data.battery < {}\n    for: 10m\n", 10 + i % 5)),
        }
    }
    yaml
}

fn engine(n: usize) -> Engine {
    let text = rules(n);
    let file = RuleFile {
        path: "bench.yaml".into(),
        documents: parse_documents(&text).unwrap(),
        text,
    };
    let set = compile_files(&[file]).unwrap_or_else(|e| panic!("{e:?}"));
    Engine::new(set, EngineMetrics::unregistered().unwrap())
}

fn bench(c: &mut Criterion) {
    let batches = batches();
    let start: Timestamp = "2026-01-05T00:00:00Z".parse().unwrap();
    let defaults = EventDefaults {
        source: "/bench",
        event_type: "atalaya.event",
        now: start,
    };
    let mut group = c.benchmark_group("engine");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(SERIES as u64));

    group.bench_function("decode_only", |b| {
        b.iter(|| {
            for body in &batches {
                black_box(decode_structured(body, defaults).unwrap());
            }
        })
    });
    for n in [10, 100, 1000] {
        let mut engine = engine(n);
        let mut clock = start;
        group.bench_with_input(BenchmarkId::new("decode_and_evaluate", n), &n, |b, _| {
            b.iter(|| {
                for body in &batches {
                    for event in decode_structured(body, defaults).unwrap() {
                        clock += SignedDuration::from_millis(1);
                        black_box(engine.on_event(clock, &event));
                    }
                }
                black_box(engine.take_changes(clock));
            })
        });
    }
    // The engine alone, on events decoded beforehand: where the time of the above goes.
    let decoded: Vec<_> = batches
        .iter()
        .flat_map(|body| decode_structured(body, defaults).unwrap())
        .collect();
    for n in [10, 100, 1000] {
        let mut engine = engine(n);
        let mut clock = start;
        group.bench_with_input(BenchmarkId::new("evaluate_only", n), &n, |b, _| {
            b.iter(|| {
                for event in &decoded {
                    clock += SignedDuration::from_millis(1);
                    black_box(engine.on_event(clock, event));
                }
                black_box(engine.take_changes(clock));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
