//! The embedded state store: one redb file under the state directory.
//!
//! redb is pure Rust, ACID and crash-safe: a committed write survives a power cut. The file is
//! locked while open, so two instances pointed at the same state directory fail at start
//! with a clear error instead of corrupting each other's state. Engines keep their state in
//! named tables of byte keys and values, encoded as they see fit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus::{IntCounterVec, Opts, Registry};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
};

/// The file name of the store inside the state directory.
pub const STORE_FILE: &str = "atalaya.redb";

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state store {path} is in use by another atalaya process")]
    InUse { path: PathBuf },
    #[error("cannot open state store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("state store: {0}")]
    Storage(#[from] redb::Error),
    /// The replication journal refused the transaction (high availability: this replica is no
    /// longer the leader, or the journal is unreachable); nothing was written.
    #[error("state store: not replicated, so not written: {0}")]
    NotReplicated(String),
}

/// High availability's seam into the store: every write transaction is shown to the journal
/// before it commits, and commits only if the journal took it (see `src/ha/`).
pub trait Journal: Send + Sync {
    /// Appends the changes of one transaction (`store` reads the state committed before it);
    /// returns the journal position the transaction will have, or why it must not commit.
    fn append(&self, store: &Store, changes: &[TableBatch<'_>]) -> Result<u64, String>;
}

/// The table holding the journal position the store's state corresponds to (`position`: a
/// big-endian u64), written in the same transaction as the changes it stands for.
pub const JOURNAL_TABLE: &str = "ha_journal";
const JOURNAL_POSITION: &[u8] = b"position";

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// The writes and deletes of one table, as part of a [`Store::write_tables`] transaction.
#[derive(Debug, Clone, Copy)]
pub struct TableBatch<'a> {
    pub table: &'a str,
    pub puts: &'a [Entry],
    pub deletes: &'a [Vec<u8>],
}

/// An open state store.
pub struct Store {
    path: PathBuf,
    db: Database,
    /// Write transactions committed since open: what wears an SD card is their number more
    /// than their size (each rewrites a few pages and syncs), so it is watched.
    commits: AtomicU64,
    /// `atalaya_state_records_set_aside_total{table}`, once registered.
    set_aside: OnceLock<IntCounterVec>,
    /// The replication journal, on the leader of a highly available deployment only.
    journal: OnceLock<Arc<dyn Journal>>,
}

/// redb's page cache. Its default (1 GiB) lets the cache grow with every page ever written,
/// which after an alert storm was most of the resident memory; reads are rare here (a
/// restart scans each table once), so a small cache costs nothing measurable.
const CACHE_BYTES: usize = 8 << 20;

/// The table of records that could not be restored, kept for a person to look at.
pub const SET_ASIDE_TABLE: &str = "set_aside";

impl Store {
    /// Opens (or creates) the store in `dir`, creating the directory if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(STORE_FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| match source {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::InUse { path: path.clone() }
                }
                source => StoreError::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        Ok(Self {
            path,
            db,
            commits: AtomicU64::new(0),
            set_aside: OnceLock::new(),
            journal: OnceLock::new(),
        })
    }

    /// Registers `atalaya_state_records_set_aside_total{table}` (zero for the known tables).
    pub fn register_metrics(&self, registry: &Registry, tables: &[&str]) -> prometheus::Result<()> {
        let counter = IntCounterVec::new(
            Opts::new(
                "atalaya_state_records_set_aside_total",
                "Stored records that could not be restored, moved to the set_aside table instead of stopping the start.",
            ),
            &["table"],
        )?;
        registry.register(Box::new(counter.clone()))?;
        for table in tables {
            counter.with_label_values(&[table]).inc_by(0);
        }
        let _ = self.set_aside.set(counter);
        Ok(())
    }

    /// Moves a record that cannot be restored out of the way: kept in [`SET_ASIDE_TABLE`]
    /// (under its table, key and when) with the reason, and counted, so that one bad record
    /// never stops a start, nor is silently lost.
    pub fn set_aside(
        &self,
        table: &str,
        key: &[u8],
        record: &[u8],
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut aside_key = Vec::with_capacity(table.len() + key.len() + 24);
        aside_key.extend_from_slice(table.as_bytes());
        aside_key.push(0);
        aside_key.extend_from_slice(key);
        aside_key.push(0);
        aside_key.extend_from_slice(jiff::Timestamp::now().to_string().as_bytes());
        let value = serde_json::json!({
            "table": table,
            "reason": reason,
            "record": String::from_utf8_lossy(record),
        });
        self.put(SET_ASIDE_TABLE, &aside_key, value.to_string().as_bytes())?;
        if let Some(counter) = self.set_aside.get() {
            counter.with_label_values(&[table]).inc();
        }
        Ok(())
    }

    /// Write transactions committed since the store was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// From now on every write transaction goes through `journal` first (a replica that
    /// became the leader). Once set, it stays.
    pub fn set_journal(&self, journal: Arc<dyn Journal>) {
        let _ = self.journal.set(journal);
    }

    /// The journal position of the state in the store (0: none).
    pub fn journal_position(&self) -> Result<u64, StoreError> {
        Ok(self
            .get(JOURNAL_TABLE, JOURNAL_POSITION)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Commits `txn` whose changes are `changes`: through the journal first when there is one,
    /// recording the position it gave in the same transaction.
    fn commit_changes(
        &self,
        txn: redb::WriteTransaction,
        changes: &[TableBatch<'_>],
    ) -> Result<(), StoreError> {
        if let Some(journal) = self.journal.get() {
            let position = journal
                .append(self, changes)
                .map_err(StoreError::NotReplicated)?;
            write_position(&txn, position)?;
        }
        self.commit(txn)
    }

    /// Writes the changes of a replicated transaction at journal `position`, in one
    /// transaction (a follower applying the leader's journal). `replace` first empties every
    /// table (a snapshot).
    pub fn apply_replicated(
        &self,
        changes: &[TableBatch<'_>],
        position: u64,
        replace: bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        if replace {
            let names: Vec<String> = txn
                .list_tables()
                .map_err(redb::Error::from)?
                .map(|t| redb::TableHandle::name(&t).to_owned())
                .collect();
            for name in names {
                let def = TableDefinition::<&[u8], &[u8]>::new(&name);
                txn.delete_table(def).map_err(redb::Error::from)?;
            }
        }
        write_changes(&txn, changes)?;
        write_position(&txn, position)?;
        self.commit(txn)
    }

    /// Every table's name and entries (a snapshot for the journal), except the journal's own.
    pub fn dump(&self) -> Result<Vec<(String, Vec<Entry>)>, StoreError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let mut tables = Vec::new();
        for handle in txn.list_tables().map_err(redb::Error::from)? {
            let name = redb::TableHandle::name(&handle).to_owned();
            if name == JOURNAL_TABLE {
                continue;
            }
            let def = TableDefinition::<&[u8], &[u8]>::new(&name);
            let t = txn.open_table(def).map_err(redb::Error::from)?;
            tables.push((name, entries(t.iter().map_err(redb::Error::from)?)?));
        }
        Ok(tables)
    }

    fn commit(&self, txn: redb::WriteTransaction) -> Result<(), StoreError> {
        txn.commit().map_err(redb::Error::from)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Where the store file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `value` under `key` in `table`, durably.
    pub fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let def = TableDefinition::<&[u8], &[u8]>::new(table);
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        {
            let mut t = txn.open_table(def).map_err(redb::Error::from)?;
            t.insert(key, value).map_err(redb::Error::from)?;
        }
        if self.journal.get().is_some() {
            let puts = [(key.to_vec(), value.to_vec())];
            let changes = [TableBatch {
                table,
                puts: &puts,
                deletes: &[],
            }];
            return self.commit_changes(txn, &changes);
        }
        self.commit(txn)?;
        Ok(())
    }

    /// Reads the value under `key` in `table`.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let def = TableDefinition::<&[u8], &[u8]>::new(table);
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(redb::Error::from(e).into()),
        };
        let value = t.get(key).map_err(redb::Error::from)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Writes and deletes several keys of `table` in one durable transaction: all or none.
    pub fn write_batch(
        &self,
        table: &str,
        puts: &[Entry],
        deletes: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let def = TableDefinition::<&[u8], &[u8]>::new(table);
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        {
            let mut t = txn.open_table(def).map_err(redb::Error::from)?;
            for key in deletes {
                t.remove(key.as_slice()).map_err(redb::Error::from)?;
            }
            for (key, value) in puts {
                t.insert(key.as_slice(), value.as_slice())
                    .map_err(redb::Error::from)?;
            }
        }
        self.commit_changes(
            txn,
            &[TableBatch {
                table,
                puts,
                deletes,
            }],
        )
    }

    /// Writes and deletes keys of several tables in one durable transaction: all or none
    /// (moving an entry from one table to another, say). Deletes of a table come before its
    /// writes.
    pub fn write_tables(&self, batches: &[TableBatch<'_>]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        for batch in batches {
            let def = TableDefinition::<&[u8], &[u8]>::new(batch.table);
            let mut t = txn.open_table(def).map_err(redb::Error::from)?;
            for key in batch.deletes {
                t.remove(key.as_slice()).map_err(redb::Error::from)?;
            }
            for (key, value) in batch.puts {
                t.insert(key.as_slice(), value.as_slice())
                    .map_err(redb::Error::from)?;
            }
        }
        self.commit_changes(txn, batches)
    }

    /// How many keys `table` holds (0 for a table never written).
    pub fn count(&self, table: &str) -> Result<u64, StoreError> {
        self.read(table, 0, |t| t.len().map_err(redb::Error::from))
    }

    /// Every key and value of `table`, in key order.
    pub fn scan(&self, table: &str) -> Result<Vec<Entry>, StoreError> {
        self.read(table, Vec::new(), |t| entries(t.iter()?))
    }

    /// Up to `limit` keys and values of `table` from `from` on (inclusive), in key order:
    /// a prefix's records (stop at the first key without it), or the oldest of a time-ordered
    /// table, without reading the rest.
    pub fn range(&self, table: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.read(table, Vec::new(), |t| entries(t.range(from..)?.take(limit)))
    }

    /// The last `limit` keys and values of `table`, last first.
    pub fn last_n(&self, table: &str, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.read(table, Vec::new(), |t| entries(t.iter()?.rev().take(limit)))
    }

    /// `read` of `table` in a read transaction; `absent` for a table never written.
    fn read<T>(
        &self,
        table: &str,
        absent: T,
        read: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let def = TableDefinition::<&[u8], &[u8]>::new(table);
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        match txn.open_table(def) {
            Ok(t) => Ok(read(&t)?),
            Err(TableError::TableDoesNotExist(_)) => Ok(absent),
            Err(e) => Err(redb::Error::from(e).into()),
        }
    }

    /// Removes `key` from `table`; returns whether it was there.
    pub fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        let def = TableDefinition::<&[u8], &[u8]>::new(table);
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        let removed = {
            let mut t = txn.open_table(def).map_err(redb::Error::from)?;
            t.remove(key).map_err(redb::Error::from)?.is_some()
        };
        if self.journal.get().is_some() {
            let deletes = [key.to_vec()];
            let changes = [TableBatch {
                table,
                puts: &[],
                deletes: &deletes,
            }];
            self.commit_changes(txn, &changes)?;
        } else {
            self.commit(txn)?;
        }
        Ok(removed)
    }
}

/// Writes `batches` in `txn`; deletes of a table before its writes.
fn write_changes(
    txn: &redb::WriteTransaction,
    batches: &[TableBatch<'_>],
) -> Result<(), redb::Error> {
    for batch in batches {
        let def = TableDefinition::<&[u8], &[u8]>::new(batch.table);
        let mut t = txn.open_table(def)?;
        for key in batch.deletes {
            t.remove(key.as_slice())?;
        }
        for (key, value) in batch.puts {
            t.insert(key.as_slice(), value.as_slice())?;
        }
    }
    Ok(())
}

fn write_position(txn: &redb::WriteTransaction, position: u64) -> Result<(), redb::Error> {
    let mut t = txn.open_table(TableDefinition::<&[u8], &[u8]>::new(JOURNAL_TABLE))?;
    t.insert(JOURNAL_POSITION, position.to_be_bytes().as_slice())?;
    Ok(())
}

/// The keys and values an iterator over a table gives, copied out.
fn entries<'a>(
    iter: impl Iterator<
        Item = Result<
            (
                redb::AccessGuard<'a, &'static [u8]>,
                redb::AccessGuard<'a, &'static [u8]>,
            ),
            redb::StorageError,
        >,
    >,
) -> Result<Vec<Entry>, redb::Error> {
    iter.map(|entry| {
        let (k, v) = entry?;
        Ok((k.value().to_vec(), v.value().to_vec()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("data");
        {
            let store = Store::open(&state).unwrap();
            store.put("timers", b"rule/a", b"123").unwrap();
            store.put("timers", b"rule/b", b"456").unwrap();
            assert!(store.remove("timers", b"rule/b").unwrap());
        }
        let store = Store::open(&state).unwrap();
        assert_eq!(
            store.get("timers", b"rule/a").unwrap().as_deref(),
            Some(&b"123"[..])
        );
        assert_eq!(store.get("timers", b"rule/b").unwrap(), None);
        assert_eq!(store.get("never-written", b"x").unwrap(), None);
    }

    #[test]
    fn batches_write_and_scan_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.scan("series").unwrap().is_empty());
        let puts = vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"a".to_vec(), b"1".to_vec()),
        ];
        store.write_batch("series", &puts, &[]).unwrap();
        store
            .write_batch(
                "series",
                &[(b"c".to_vec(), b"3".to_vec())],
                &[b"b".to_vec()],
            )
            .unwrap();
        let keys: Vec<Vec<u8>> = store
            .scan("series")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [b"a".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn a_multi_table_batch_moves_entries_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.count("queue").unwrap(), 0);
        store.put("queue", b"k", b"v").unwrap();
        store
            .write_tables(&[
                TableBatch {
                    table: "queue",
                    puts: &[],
                    deletes: &[b"k".to_vec()],
                },
                TableBatch {
                    table: "dead",
                    puts: &[(b"k".to_vec(), b"v".to_vec())],
                    deletes: &[],
                },
            ])
            .unwrap();
        assert_eq!(store.count("queue").unwrap(), 0);
        assert_eq!(store.count("dead").unwrap(), 1);
        assert_eq!(store.get("dead", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("second open must fail");
        assert!(matches!(err, StoreError::InUse { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("in use by another atalaya process")
        );
    }

    /// A journal that numbers transactions, refusing them once told to.
    struct Numbering {
        next: std::sync::Mutex<u64>,
        refuse: std::sync::atomic::AtomicBool,
        seen: std::sync::Mutex<Vec<String>>,
    }

    impl Journal for Numbering {
        fn append(&self, _store: &Store, changes: &[TableBatch<'_>]) -> Result<u64, String> {
            if self.refuse.load(Ordering::Relaxed) {
                return Err("deposed".to_owned());
            }
            let mut seen = self.seen.lock().unwrap();
            for c in changes {
                seen.push(format!("{}:{}+{}-", c.table, c.puts.len(), c.deletes.len()));
            }
            let mut next = self.next.lock().unwrap();
            *next += 1;
            Ok(*next)
        }
    }

    #[test]
    fn every_write_goes_through_the_journal_and_a_refused_one_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put("before", b"k", b"v").unwrap();
        assert_eq!(store.journal_position().unwrap(), 0);
        let journal = Arc::new(Numbering {
            next: std::sync::Mutex::new(10),
            refuse: Default::default(),
            seen: Default::default(),
        });
        store.set_journal(journal.clone());
        store.put("t", b"a", b"1").unwrap();
        store
            .write_batch("t", &[(b"b".to_vec(), b"2".to_vec())], &[])
            .unwrap();
        store.remove("t", b"a").unwrap();
        assert_eq!(store.journal_position().unwrap(), 13);
        assert_eq!(
            *journal.seen.lock().unwrap(),
            ["t:1+0-", "t:1+0-", "t:0+1-"]
        );
        journal.refuse.store(true, Ordering::Relaxed);
        let err = store.put("t", b"c", b"3").unwrap_err();
        assert!(matches!(err, StoreError::NotReplicated(_)), "{err}");
        assert_eq!(store.get("t", b"c").unwrap(), None);
        assert_eq!(store.journal_position().unwrap(), 13);
    }

    #[test]
    fn a_replicated_snapshot_replaces_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put("old", b"k", b"v").unwrap();
        let puts = [(b"x".to_vec(), b"1".to_vec())];
        let changes = [TableBatch {
            table: "new",
            puts: &puts,
            deletes: &[],
        }];
        store.apply_replicated(&changes, 7, true).unwrap();
        assert_eq!(store.count("old").unwrap(), 0);
        assert_eq!(store.get("new", b"x").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.journal_position().unwrap(), 7);
        let dump = store.dump().unwrap();
        assert_eq!(dump, [("new".to_owned(), puts.to_vec())]);
    }
}
