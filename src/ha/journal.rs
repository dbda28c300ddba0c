//! The journal's entries and how a follower applies them — sans-IO: bytes in, store changes
//! out.
//!
//! Each message of the journal stream is one entry:
//! - `Changes`: one store transaction of the leader — the keys it wrote and deleted, table by
//!   table, nothing else (an append costs what changed);
//! - `Epoch`: written first by a new leader, so that the previous leader's appends, which
//!   expect the stream's last sequence to be their own last one, are refused from then on;
//! - `Snapshot` chunks: every table of the store, in order, for a replica that starts fresh or
//!   fell behind the stream's retention.
//!
//! Every entry carries the writer's term (its lease revision); a follower ignores entries of
//! a term below the highest it has seen.
//!
//! Encoding (big-endian): version u8, kind u8, term u64, then for an epoch the replica
//! (u16 length + bytes); for a snapshot chunk a flags byte (1 first, 2 last) then tables; for
//! changes the tables. Tables: count u32, each name (u16 + bytes), deletes (u32 count, each
//! u32 + bytes), puts (u32 count, each key u32 + bytes, value u32 + bytes).

use atalaya_bus::store::{Entry, TableBatch};

const VERSION: u8 = 1;
const KIND_CHANGES: u8 = 1;
const KIND_EPOCH: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
const FIRST: u8 = 1;
const LAST: u8 = 2;

/// One table's part of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableChanges {
    pub table: String,
    pub puts: Vec<Entry>,
    pub deletes: Vec<Vec<u8>>,
}

impl TableChanges {
    pub fn as_batch(&self) -> TableBatch<'_> {
        TableBatch {
            table: &self.table,
            puts: &self.puts,
            deletes: &self.deletes,
        }
    }
}

/// A decoded journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalEntry {
    Changes {
        term: u64,
        tables: Vec<TableChanges>,
    },
    Epoch {
        term: u64,
        replica: String,
    },
    Snapshot {
        term: u64,
        first: bool,
        last: bool,
        tables: Vec<TableChanges>,
    },
}

impl JournalEntry {
    pub fn term(&self) -> u64 {
        match self {
            Self::Changes { term, .. } | Self::Epoch { term, .. } | Self::Snapshot { term, .. } => {
                *term
            }
        }
    }
}

/// Why a message is not a journal entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JournalDecodeError {
    #[error("journal entry of version {0}, this atalaya reads version {VERSION}")]
    Version(u8),
    #[error("unknown journal entry kind {0}")]
    Kind(u8),
    #[error("journal entry cut short")]
    Truncated,
    #[error("journal entry: a name is not UTF-8")]
    Name,
}

/// The bytes of a `Changes` entry of `term`.
pub fn encode_changes(term: u64, changes: &[TableBatch<'_>]) -> Vec<u8> {
    let mut out = header(KIND_CHANGES, term, changes);
    put_tables(&mut out, changes);
    out
}

/// The bytes of an `Epoch` entry.
pub fn encode_epoch(term: u64, replica: &str) -> Vec<u8> {
    let mut out = vec![VERSION, KIND_EPOCH];
    out.extend_from_slice(&term.to_be_bytes());
    put_short(&mut out, replica.as_bytes());
    out
}

/// The bytes of one snapshot chunk.
pub fn encode_snapshot(term: u64, first: bool, last: bool, tables: &[TableBatch<'_>]) -> Vec<u8> {
    let mut out = header(KIND_SNAPSHOT, term, tables);
    out.push(if first { FIRST } else { 0 } | if last { LAST } else { 0 });
    put_tables(&mut out, tables);
    out
}

fn header(kind: u8, term: u64, tables: &[TableBatch<'_>]) -> Vec<u8> {
    let size: usize = tables
        .iter()
        .map(|t| {
            t.table.len()
                + 10
                + t.deletes.iter().map(|k| k.len() + 4).sum::<usize>()
                + t.puts
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 8)
                    .sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(size + 16);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&term.to_be_bytes());
    out
}

fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    // Table and replica names are short by construction (checked config, fixed names).
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

fn put_long(out: &mut Vec<u8>, bytes: &[u8]) {
    // redb keys and values are far below 4 GiB.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_tables(out: &mut Vec<u8>, tables: &[TableBatch<'_>]) {
    out.extend_from_slice(&(tables.len() as u32).to_be_bytes());
    for t in tables {
        put_short(out, t.table.as_bytes());
        out.extend_from_slice(&(t.deletes.len() as u32).to_be_bytes());
        for key in t.deletes {
            put_long(out, key);
        }
        out.extend_from_slice(&(t.puts.len() as u32).to_be_bytes());
        for (key, value) in t.puts {
            put_long(out, key);
            put_long(out, value);
        }
    }
}

/// Reads an entry.
pub fn decode(bytes: &[u8]) -> Result<JournalEntry, JournalDecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != VERSION {
        return Err(JournalDecodeError::Version(version));
    }
    let kind = r.u8()?;
    let term = r.u64()?;
    match kind {
        KIND_CHANGES => Ok(JournalEntry::Changes {
            term,
            tables: r.tables()?,
        }),
        KIND_EPOCH => Ok(JournalEntry::Epoch {
            term,
            replica: r.name()?,
        }),
        KIND_SNAPSHOT => {
            let flags = r.u8()?;
            Ok(JournalEntry::Snapshot {
                term,
                first: flags & FIRST != 0,
                last: flags & LAST != 0,
                tables: r.tables()?,
            })
        }
        other => Err(JournalDecodeError::Kind(other)),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], JournalDecodeError> {
        if self.0.len() < n {
            return Err(JournalDecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, JournalDecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, JournalDecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, JournalDecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, JournalDecodeError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn name(&mut self) -> Result<String, JournalDecodeError> {
        let n = usize::from(self.u16()?);
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| JournalDecodeError::Name)
    }
    fn long(&mut self) -> Result<Vec<u8>, JournalDecodeError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A count, no larger than what the remaining bytes could hold (`min` bytes each).
    fn count(&mut self, min: usize) -> Result<usize, JournalDecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.0.len() {
            return Err(JournalDecodeError::Truncated);
        }
        Ok(n)
    }
    fn tables(&mut self) -> Result<Vec<TableChanges>, JournalDecodeError> {
        let n = self.count(10)?;
        let mut tables = Vec::with_capacity(n);
        for _ in 0..n {
            let table = self.name()?;
            let deletes = (0..self.count(4)?)
                .map(|_| self.long())
                .collect::<Result<_, _>>()?;
            let puts = (0..self.count(8)?)
                .map(|_| Ok((self.long()?, self.long()?)))
                .collect::<Result<_, _>>()?;
            tables.push(TableChanges {
                table,
                puts,
                deletes,
            });
        }
        Ok(tables)
    }
}

/// What a follower does with one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Apply {
    /// Write these changes at this position (`replace`: a whole snapshot, emptying the rest).
    Write {
        tables: Vec<TableChanges>,
        replace: bool,
    },
    /// Only the position moves (an epoch, a chunk being collected, an entry skipped).
    Skip,
    /// An entry of a deposed leader's term: not applied.
    Fenced { term: u64, highest: u64 },
}

/// A follower's reading of the journal: the fencing by term, and snapshots collected whole
/// before they are applied in one transaction.
#[derive(Debug, Default)]
pub struct Applier {
    highest_term: u64,
    /// The chunks of a snapshot being read.
    collecting: Option<Vec<TableChanges>>,
    /// The local state is not a prefix of the stream (fresh, or fell behind its retention):
    /// changes mean nothing until a snapshot begins.
    needs_snapshot: bool,
}

impl Applier {
    pub fn new(needs_snapshot: bool) -> Self {
        Self {
            needs_snapshot,
            ..Self::default()
        }
    }

    pub fn needs_snapshot(&self) -> bool {
        self.needs_snapshot
    }

    pub fn on_entry(&mut self, entry: JournalEntry) -> Apply {
        let term = entry.term();
        if term < self.highest_term {
            return Apply::Fenced {
                term,
                highest: self.highest_term,
            };
        }
        self.highest_term = term;
        match entry {
            JournalEntry::Epoch { .. } => Apply::Skip,
            JournalEntry::Changes { .. } if self.needs_snapshot => Apply::Skip,
            JournalEntry::Changes { tables, .. } => {
                // A snapshot cut short by a new leader is abandoned: changes follow on from
                // the state before it.
                self.collecting = None;
                Apply::Write {
                    tables,
                    replace: false,
                }
            }
            JournalEntry::Snapshot {
                first,
                last,
                tables,
                ..
            } => {
                if first {
                    self.collecting = Some(Vec::new());
                }
                let Some(collected) = self.collecting.as_mut() else {
                    return Apply::Skip;
                };
                collected.extend(tables);
                if !last {
                    return Apply::Skip;
                }
                let tables = self.collecting.take().unwrap_or_default();
                self.needs_snapshot = false;
                Apply::Write {
                    tables,
                    replace: true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(table: &str, key: &str, value: &str) -> TableChanges {
        TableChanges {
            table: table.into(),
            puts: vec![(key.as_bytes().to_vec(), value.as_bytes().to_vec())],
            deletes: vec![b"gone".to_vec()],
        }
    }

    #[test]
    fn entries_round_trip() {
        let t = [
            changes("series", "rule/a", "{}"),
            changes("outbox", "n1", "x"),
        ];
        let batches: Vec<_> = t.iter().map(TableChanges::as_batch).collect();
        assert_eq!(
            decode(&encode_changes(5, &batches)).unwrap(),
            JournalEntry::Changes {
                term: 5,
                tables: t.to_vec()
            }
        );
        assert_eq!(
            decode(&encode_epoch(6, "atalaya-1")).unwrap(),
            JournalEntry::Epoch {
                term: 6,
                replica: "atalaya-1".into()
            }
        );
        assert_eq!(
            decode(&encode_snapshot(6, true, false, &batches)).unwrap(),
            JournalEntry::Snapshot {
                term: 6,
                first: true,
                last: false,
                tables: t.to_vec()
            }
        );
    }

    #[test]
    fn an_append_costs_what_changed() {
        let t = [changes("series", "rule/a", "{\"v\":1}")];
        let batches: Vec<_> = t.iter().map(TableChanges::as_batch).collect();
        // Header 10, table count 4, name 2+6, deletes 4+(4+4), puts 4+(4+6)+(4+7): the
        // changed keys and values and 39 bytes of framing, whatever the table holds.
        assert_eq!(encode_changes(1, &batches).len(), 59);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = encode_changes(1, &[changes("t", "k", "v").as_batch()]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&[9, 1]), Err(JournalDecodeError::Version(9)));
        let mut huge = vec![VERSION, KIND_CHANGES];
        huge.extend_from_slice(&1u64.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&huge), Err(JournalDecodeError::Truncated));
    }

    #[test]
    fn entries_of_a_deposed_term_are_fenced() {
        let mut a = Applier::new(false);
        assert_eq!(
            a.on_entry(JournalEntry::Epoch {
                term: 9,
                replica: "b".into()
            }),
            Apply::Skip
        );
        let old = JournalEntry::Changes {
            term: 4,
            tables: vec![changes("t", "k", "v")],
        };
        assert_eq!(
            a.on_entry(old),
            Apply::Fenced {
                term: 4,
                highest: 9
            }
        );
        let new = JournalEntry::Changes {
            term: 9,
            tables: vec![changes("t", "k", "v")],
        };
        assert!(matches!(
            a.on_entry(new),
            Apply::Write { replace: false, .. }
        ));
    }

    #[test]
    fn a_fresh_replica_waits_for_a_snapshot_and_applies_it_whole() {
        let mut a = Applier::new(true);
        let tx = |v: &str| JournalEntry::Changes {
            term: 1,
            tables: vec![changes("t", "k", v)],
        };
        assert_eq!(a.on_entry(tx("before")), Apply::Skip);
        let chunk = |first, last, table: &str| JournalEntry::Snapshot {
            term: 1,
            first,
            last,
            tables: vec![changes(table, "k", "v")],
        };
        assert_eq!(a.on_entry(chunk(true, false, "a")), Apply::Skip);
        assert_eq!(
            a.on_entry(chunk(false, true, "b")),
            Apply::Write {
                tables: vec![changes("a", "k", "v"), changes("b", "k", "v")],
                replace: true
            }
        );
        assert!(!a.needs_snapshot());
        assert!(matches!(a.on_entry(tx("after")), Apply::Write { .. }));
    }
}
