//! The lease as the rest of the process sees it: until when, by the monotonic clock, this
//! replica may act as the leader. Whatever sends anything out (the outbox, rule actions, the
//! journal) asks [`ensure_leading`] first; past the lease the process ends at once, so a
//! leader paused (SIGSTOP) past its lease sends nothing when it wakes up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The exit code of a deposed leader (EX_TEMPFAIL): restarted, it follows the new leader.
pub const DEPOSED_EXIT: u8 = 75;

/// The lease of the process, once high availability is on.
static LEASE: OnceLock<Arc<Lease>> = OnceLock::new();

/// Until when this replica leads.
#[derive(Debug)]
pub struct Lease {
    anchor: Instant,
    /// Nanoseconds after `anchor` the lease ends; 0 while following.
    valid_until: AtomicU64,
    term: AtomicU64,
}

impl Lease {
    /// The process's lease (made on first use).
    pub fn global() -> Arc<Lease> {
        Arc::clone(LEASE.get_or_init(|| {
            Arc::new(Lease {
                anchor: Instant::now(),
                valid_until: AtomicU64::new(0),
                term: AtomicU64::new(0),
            })
        }))
    }

    pub fn set(&self, term: u64, valid_until: Instant) {
        let nanos = valid_until
            .saturating_duration_since(self.anchor)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64;
        self.term.store(term, Ordering::SeqCst);
        self.valid_until.store(nanos.max(1), Ordering::SeqCst);
    }

    /// Ends the lease now (deposed).
    pub fn end(&self) {
        self.valid_until.store(1, Ordering::SeqCst);
    }

    /// The term of the lease last set (the fencing token).
    #[cfg(test)]
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::SeqCst)
    }

    /// Whether the lease holds at this instant.
    pub fn is_valid(&self) -> bool {
        let until = self.valid_until.load(Ordering::SeqCst);
        until > 1 && self.anchor.elapsed().as_nanos() < u128::from(until)
    }
}

/// Ends the process if high availability is on and this replica's lease has lapsed: called
/// right before anything is sent out. Without high availability, does nothing.
pub fn ensure_leading(what: &str) {
    if let Some(lease) = LEASE.get()
        && !lease.is_valid()
    {
        depose(&format!("about to {what}"));
    }
}

/// Stops acting at once: logs why and exits with [`DEPOSED_EXIT`], without the graceful
/// shutdown (which would flush the outbox — exactly what a deposed leader must not do).
pub fn depose(reason: &str) -> ! {
    if let Some(lease) = LEASE.get() {
        lease.end();
    }
    tracing::error!(
        reason,
        "This replica's lease as leader has ended: exiting at once so that it sends nothing more; restarted, it follows the new leader."
    );
    eprintln!("atalaya: deposed as leader ({reason}); exiting");
    std::process::exit(DEPOSED_EXIT.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_holds_until_its_instant() {
        let lease = Lease {
            anchor: Instant::now(),
            valid_until: AtomicU64::new(0),
            term: AtomicU64::new(0),
        };
        assert!(!lease.is_valid());
        lease.set(4, Instant::now() + Duration::from_secs(60));
        assert!(lease.is_valid());
        assert_eq!(lease.term(), 4);
        lease.end();
        assert!(!lease.is_valid());
        lease.set(5, Instant::now());
        assert!(!lease.is_valid());
    }
}
