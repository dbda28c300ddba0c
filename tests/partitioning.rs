//! Beyond one leader, on paper (docs/high-availability.md, "Partitioned evaluation"): a
//! simulation of the sharding that design proposes, not a part of the service. Series (a
//! rule's state per subject) are hashed into a fixed number of partitions, one JetStream
//! stream each; partitions are spread over the replicas by rendezvous (highest random weight)
//! hashing, each partition led by the replica that scores highest for it. On generated
//! homelab subjects it shows how even the load is, and what a replica joining or leaving
//! costs — compared with the naive `hash % replicas`.
//!
//! Run with `--no-capture` to see the table the docs quote.

use std::collections::BTreeMap;

/// Partitions: fixed for the life of a deployment (a stream each), many more than replicas
/// so they can be spread evenly and moved one at a time. (With 64 the spread over 3–5
/// replicas is already 1.3–1.5× the mean on the busiest: printed below for comparison.)
const PARTITIONS: u32 = 256;

/// FNV-1a, 64 bits: stable across builds and machines (the assignment must agree between
/// replicas of different versions).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A 64-bit mix, so that nearby inputs score independently.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The partition of a series: its subject's hash. (A rule over a wildcard that aggregates
/// across subjects — a count window, `absent_for` of "any" — shards by its fixed prefix
/// instead; see the docs.)
fn partition_of(subject: &str) -> u32 {
    partition_among(subject, PARTITIONS)
}

fn partition_among(subject: &str, partitions: u32) -> u32 {
    (mix(fnv1a(subject.as_bytes())) % u64::from(partitions)) as u32
}

/// Rendezvous hashing: the replica scoring highest for the partition leads it.
fn leader_of(partition: u32, replicas: &[&str]) -> usize {
    (0..replicas.len())
        .max_by_key(|&r| mix(fnv1a(replicas[r].as_bytes()) ^ u64::from(partition)))
        .unwrap_or(0)
}

/// The naive alternative, for comparison.
fn modulo_leader(partition: u32, replicas: usize) -> usize {
    (mix(u64::from(partition)) % replicas as u64) as usize
}

/// Homelab-shaped subjects: sensors per room, hosts, pods, nodes; deterministic.
fn subjects(count: usize) -> Vec<String> {
    let rooms = [
        "kitchen", "living", "bath", "garage", "attic", "office", "bed1", "bed2", "hall", "garden",
    ];
    let kinds = ["temperature", "humidity", "power", "contact", "motion"];
    let mut out = Vec::with_capacity(count);
    let mut i = 0usize;
    while out.len() < count {
        let s = match i % 4 {
            0 => format!(
                "zigbee2mqtt/{}/{}-{}",
                rooms[i % rooms.len()],
                kinds[(i / 7) % kinds.len()],
                i / 40
            ),
            1 => format!("host/pi-{}/cpu/temperature", i / 4),
            2 => format!("k8s/pod/ns-{}/pod-{}", i % 13, i / 4),
            _ => format!("k8s/node/node-{}/condition/{}", i / 4 % 50, i / 200),
        };
        out.push(s);
        i += 1;
    }
    out
}

/// How unbalanced a distribution is: the largest share over the mean.
fn max_over_mean(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    let mean = total as f64 / counts.len() as f64;
    *counts.iter().max().unwrap_or(&0) as f64 / mean
}

fn load_per_replica(series: &[u32], leaders: &[usize], replicas: usize) -> Vec<usize> {
    let mut load = vec![0; replicas];
    for p in series {
        load[leaders[*p as usize]] += 1;
    }
    load
}

#[test]
fn sharding_by_subject_hash_is_even_and_moving_a_replica_moves_little() {
    let subjects = subjects(20_000);
    let series: Vec<u32> = subjects.iter().map(|s| partition_of(s)).collect();

    // Series per partition.
    let mut per_partition = vec![0usize; PARTITIONS as usize];
    for p in &series {
        per_partition[*p as usize] += 1;
    }
    let partition_balance = max_over_mean(&per_partition);
    println!(
        "{} series over {PARTITIONS} partitions: max/mean {partition_balance:.2}",
        series.len()
    );
    assert!(partition_balance < 1.4, "{per_partition:?}");

    let names = [
        "atalaya-0",
        "atalaya-1",
        "atalaya-2",
        "atalaya-3",
        "atalaya-4",
    ];
    let mut rows = BTreeMap::new();
    for replicas in 3..=5 {
        let leaders: Vec<usize> = (0..PARTITIONS)
            .map(|p| leader_of(p, &names[..replicas]))
            .collect();
        let load = load_per_replica(&series, &leaders, replicas);
        rows.insert(replicas, (leaders, load));
    }
    for (replicas, (_, load)) in &rows {
        println!(
            "{replicas} replicas: series per replica {load:?}, max/mean {:.2}",
            max_over_mean(load)
        );
        assert!(max_over_mean(load) < 1.3, "{load:?}");
    }

    // A fourth replica joins: rendezvous moves only the partitions it now leads (about a
    // quarter); modulo moves most of them.
    let moved = |from: &[usize], to: &[usize]| -> (usize, usize) {
        let partitions = from.iter().zip(to).filter(|(a, b)| a != b).count();
        let series_moved = series
            .iter()
            .filter(|p| from[**p as usize] != to[**p as usize])
            .count();
        (partitions, series_moved)
    };
    let (three, four) = (&rows[&3].0, &rows[&4].0);
    let (hrw_partitions, hrw_series) = moved(three, four);
    let modulo3: Vec<usize> = (0..PARTITIONS).map(|p| modulo_leader(p, 3)).collect();
    let modulo4: Vec<usize> = (0..PARTITIONS).map(|p| modulo_leader(p, 4)).collect();
    let (mod_partitions, mod_series) = moved(&modulo3, &modulo4);
    let share = |n: usize| 100.0 * n as f64 / series.len() as f64;
    println!(
        "3 → 4 replicas: rendezvous moves {hrw_partitions}/{PARTITIONS} partitions ({:.0} % of series); modulo moves {mod_partitions}/{PARTITIONS} ({:.0} %)",
        share(hrw_series),
        share(mod_series)
    );
    // Every moved partition goes to the newcomer, and about 1/4 of the load moves.
    assert!(
        three
            .iter()
            .zip(four.iter())
            .all(|(a, b)| a == b || *b == 3)
    );
    assert!(
        (10.0..40.0).contains(&share(hrw_series)),
        "{}",
        share(hrw_series)
    );
    assert!(hrw_series < mod_series);

    // A replica leaves (4 → 3, atalaya-1 gone): only its partitions move.
    let without_1 = ["atalaya-0", "atalaya-2", "atalaya-3"];
    let after: Vec<usize> = (0..PARTITIONS)
        .map(|p| {
            let r = leader_of(p, &without_1);
            // Back to indices of `names`.
            [0, 2, 3][r]
        })
        .collect();
    let (left_partitions, left_series) = moved(four, &after);
    let owned_by_1 = four.iter().filter(|l| **l == 1).count();
    println!(
        "atalaya-1 leaves (4 → 3): {left_partitions} partitions move, exactly the {owned_by_1} it led ({:.0} % of series)",
        share(left_series)
    );
    assert_eq!(left_partitions, owned_by_1);
}
