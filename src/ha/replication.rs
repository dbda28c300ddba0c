//! The leader's side of the journal: every store transaction appended to the stream before
//! it commits (so before any source is acknowledged for it), fenced twice:
//!
//! - each append expects the stream's last sequence to be this leader's previous append
//!   (`Nats-Expected-Last-Sequence`): once a successor has appended its epoch entry, every
//!   append of the previous leader is refused by the stream itself;
//! - each append carries the term (header `Atalaya-Term`, and inside the entry), and is only
//!   sent while the lease holds by this process's monotonic clock.
//!
//! An append whose answer is lost is sent again with the same `Nats-Msg-Id`: the stream's
//! duplicate window makes the retry a no-op if the first got in. A refused append ends the
//! process (deposed); an append that cannot get through before the lease ends too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self};
use atalaya_bus::store::{Entry, Journal, Store, TableBatch};
use tokio::sync::mpsc;
use tracing::warn;

use super::config::HaConfig;
use super::journal;
use super::lease::{Lease, depose};

pub const TERM_HEADER: &str = "Atalaya-Term";
/// On every snapshot chunk: the sequence of the snapshot's first chunk.
pub const SNAPSHOT_START_HEADER: &str = "Atalaya-Snapshot-Start";
/// The largest payload of one snapshot chunk (NATS's default `max_payload` is 1 MiB).
const CHUNK_BYTES: usize = 256 * 1024;
/// The longest one append attempt waits for the stream's answer.
const APPEND_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest an append is retried (a NATS server lost, its stream's leader re-elected)
/// before this replica gives up leading.
const APPEND_PATIENCE: Duration = Duration::from_secs(10);

/// Which subject of the journal a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `<prefix>.tx`: changes and epochs.
    Changes,
    /// `<prefix>.snapshot`: snapshot chunks.
    Snapshot,
}

/// One message to append.
#[derive(Debug, Clone)]
pub struct JournalMessage {
    pub kind: Kind,
    pub payload: Vec<u8>,
    pub snapshot_start: Option<u64>,
}

/// Appends `message` expecting the stream to end at `expected_last`; returns its sequence.
pub async fn publish(
    js: &jetstream::Context,
    prefix: &str,
    term: u64,
    expected_last: u64,
    message: &JournalMessage,
) -> Result<u64, PublishError> {
    let subject = match message.kind {
        Kind::Changes => format!("{prefix}.tx"),
        Kind::Snapshot => format!("{prefix}.snapshot"),
    };
    let mut headers = super::node::headers();
    headers.insert(TERM_HEADER, term.to_string().as_str());
    headers.insert(
        async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
        expected_last.to_string().as_str(),
    );
    // The same id for every retry of this append: a duplicate is answered with the first.
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("{term}-{expected_last}").as_str(),
    );
    if let Some(start) = message.snapshot_start {
        headers.insert(SNAPSHOT_START_HEADER, start.to_string().as_str());
    }
    let ack = js
        .publish_with_headers(subject, headers, message.payload.clone().into())
        .await?;
    let ack = tokio::time::timeout(APPEND_TIMEOUT, ack)
        .await
        .map_err(|_| PublishError::new(PublishErrorKind::TimedOut))??;
    Ok(ack.sequence)
}

/// A snapshot of `tables` as journal messages; the first will have sequence `start`.
pub fn snapshot_messages(
    term: u64,
    start: u64,
    tables: &[(String, Vec<Entry>)],
) -> Vec<JournalMessage> {
    // Chunks of whole entries, each under CHUNK_BYTES (an entry larger than that goes alone).
    let mut chunks: Vec<Vec<(String, Vec<Entry>)>> = vec![Vec::new()];
    let mut size = 0;
    for (table, entries) in tables {
        for entry in entries {
            let cost = entry.0.len() + entry.1.len() + 8;
            if size + cost > CHUNK_BYTES && size > 0 {
                chunks.push(Vec::new());
                size = 0;
            }
            size += cost;
            let chunk = chunks
                .last_mut()
                .unwrap_or_else(|| unreachable!("never empty"));
            match chunk.last_mut() {
                Some((name, list)) if name == table => list.push(entry.clone()),
                _ => chunk.push((table.clone(), vec![entry.clone()])),
            }
        }
    }
    let count = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let batches: Vec<TableBatch<'_>> = chunk
                .iter()
                .map(|(table, puts)| TableBatch {
                    table,
                    puts,
                    deletes: &[],
                })
                .collect();
            JournalMessage {
                kind: Kind::Snapshot,
                payload: journal::encode_snapshot(term, i == 0, i + 1 == count, &batches),
                snapshot_start: Some(start),
            }
        })
        .collect()
}

/// A store transaction's messages, and where to say how it went.
pub struct AppendRequest {
    pub messages: Vec<JournalMessage>,
    pub reply: std::sync::mpsc::SyncSender<Result<u64, String>>,
}

/// Appends, on the HA thread, what the store's transactions send.
pub struct Appender {
    js: jetstream::Context,
    prefix: String,
    lease: Arc<Lease>,
    term: u64,
    last: u64,
}

impl Appender {
    pub fn new(
        js: jetstream::Context,
        config: &HaConfig,
        lease: Arc<Lease>,
        term: u64,
        last: u64,
    ) -> Self {
        Self {
            js,
            prefix: config.subject_prefix(),
            lease,
            term,
            last,
        }
    }

    pub async fn serve(mut self, mut requests: mpsc::UnboundedReceiver<AppendRequest>) {
        while let Some(request) = requests.recv().await {
            let mut result = Ok(self.last);
            for message in &request.messages {
                match self.append(message).await {
                    Ok(sequence) => result = Ok(sequence),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let failed = result.as_ref().err().cloned();
            let _ = request.reply.send(result);
            if let Some(reason) = failed {
                // The store did not commit; this replica cannot know what the stream holds
                // any more, so it stops leading. Restarted, it follows the journal.
                depose(&reason);
            }
        }
    }

    async fn append(&mut self, message: &JournalMessage) -> Result<u64, String> {
        let give_up = std::time::Instant::now() + APPEND_PATIENCE;
        loop {
            if !self.lease.is_valid() {
                return Err("the lease ended before the journal took the transaction".into());
            }
            match publish(&self.js, &self.prefix, self.term, self.last, message).await {
                Ok(sequence) => {
                    self.last = sequence;
                    return Ok(sequence);
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    return Err(format!(
                        "the journal refused term {}'s append: another replica leads now",
                        self.term
                    ));
                }
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    return Err(format!(
                        "a transaction of {} bytes is larger than NATS's max_payload",
                        message.payload.len()
                    ));
                }
                Err(e) if std::time::Instant::now() >= give_up => {
                    return Err(format!("the journal did not take the transaction: {e}"));
                }
                Err(e) => {
                    warn!(error = %e, "ha: journal append failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The store's journal on the leader: encodes each transaction and waits for the HA thread
/// to append it.
pub struct NatsJournal {
    pub requests: mpsc::UnboundedSender<AppendRequest>,
    pub term: u64,
    pub snapshot_every: u64,
    /// Transactions appended since the last snapshot.
    since_snapshot: AtomicU64,
    /// The position of the last append (to number a snapshot's first chunk).
    last: AtomicU64,
    /// `atalaya_ha_journal_position`.
    position: prometheus::IntGauge,
}

impl NatsJournal {
    pub fn new(
        requests: mpsc::UnboundedSender<AppendRequest>,
        term: u64,
        snapshot_every: u64,
        last: u64,
        position: prometheus::IntGauge,
    ) -> Self {
        position.set(i64::try_from(last).unwrap_or(i64::MAX));
        Self {
            requests,
            term,
            snapshot_every,
            since_snapshot: AtomicU64::new(0),
            last: AtomicU64::new(last),
            position,
        }
    }
}

impl Journal for NatsJournal {
    fn append(&self, store: &Store, changes: &[TableBatch<'_>]) -> Result<u64, String> {
        super::lease::ensure_leading("append to the journal");
        let mut messages = Vec::with_capacity(1);
        // Transactions are serialised by the store (one writer at a time), so these counters
        // are only ever touched by one thread at once.
        if self.since_snapshot.fetch_add(1, Ordering::SeqCst) + 1 >= self.snapshot_every {
            self.since_snapshot.store(0, Ordering::SeqCst);
            // The committed state is the state at the last append: a consistent snapshot.
            match store.dump() {
                Ok(tables) => messages.extend(snapshot_messages(
                    self.term,
                    self.last.load(Ordering::SeqCst) + 1,
                    &tables,
                )),
                Err(e) => warn!(error = %e, "ha: cannot read the store for a snapshot; later."),
            }
        }
        messages.push(JournalMessage {
            kind: Kind::Changes,
            payload: journal::encode_changes(self.term, changes),
            snapshot_start: None,
        });
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.requests
            .send(AppendRequest { messages, reply })
            .map_err(|_| "the journal is closed".to_owned())?;
        let position = answer
            .recv()
            .map_err(|_| "the journal is closed".to_owned())??;
        self.last.store(position, Ordering::SeqCst);
        self.position
            .set(i64::try_from(position).unwrap_or(i64::MAX));
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_cut_into_chunks_marked_first_and_last() {
        let big = vec![b'x'; 100 * 1024];
        let tables = vec![
            (
                "a".to_owned(),
                (0..5u8).map(|i| (vec![i], big.clone())).collect::<Vec<_>>(),
            ),
            ("b".to_owned(), vec![(b"k".to_vec(), b"v".to_vec())]),
        ];
        let messages = snapshot_messages(3, 40, &tables);
        assert_eq!(messages.len(), 3);
        let mut applier = journal::Applier::new(true);
        let mut applied = None;
        for m in &messages {
            assert_eq!(m.snapshot_start, Some(40));
            assert!(m.payload.len() <= CHUNK_BYTES + 1024);
            if let journal::Apply::Write { tables, replace } =
                applier.on_entry(journal::decode(&m.payload).unwrap())
            {
                assert!(replace);
                applied = Some(tables);
            }
        }
        let applied = applied.expect("the last chunk applies the snapshot");
        let count: usize = applied.iter().map(|t| t.puts.len()).sum();
        assert_eq!(count, 6);
    }

    #[test]
    fn an_empty_store_is_one_empty_chunk() {
        let messages = snapshot_messages(1, 2, &[]);
        assert_eq!(messages.len(), 1);
        assert!(matches!(
            journal::decode(&messages[0].payload).unwrap(),
            journal::JournalEntry::Snapshot {
                first: true,
                last: true,
                ..
            }
        ));
    }
}
