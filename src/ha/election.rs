//! Leader election on a NATS KV key, as a sans-IO state machine driven by time and by the
//! answers to the requests it asks for (the driver in `ha::node` does the IO).
//!
//! - A follower reads the key every `poll_interval`; when it is gone (the lease expired: the
//!   bucket's `max_age` is the lease TTL), it asks to `create` it. Creation is refused unless
//!   the key is absent, so one replica wins.
//! - A follower that has seen the same revision for `ttl − margin / 2` by its own clock takes
//!   the key over with `update(key, that revision)` without waiting for the server to expire
//!   it: the holder's lease ended by then (it counts `ttl − margin` from *sending* the write
//!   that made the revision, which was before anyone read it), and the compare-and-swap is
//!   refused if the holder renewed meanwhile. That keeps a failover under the TTL: at most
//!   `ttl − margin / 2 + poll_interval` after the leader's last renewal.
//! - Followers do not act in step: each read comes up to a quarter of `poll_interval` early
//!   and each take-over up to a quarter of `margin` early (still after the holder's lease
//!   ended), at random. Replicas started together would otherwise read, and take over, in
//!   the same millisecond — and a nats-server older than 2.9.21 can accept both of two
//!   compare-and-swap writes that arrive that close (nats-io/nats-server#4320). Drawn apart,
//!   the later one reads the winner's revision and keeps following.
//! - The winner is leader; the revision its `create` got is its **term**, the fencing token
//!   every replicated write carries. It renews with `update(key, revision)`: compare-and-swap,
//!   refused if anyone else wrote the key since.
//! - The lease is valid, by the leader's own monotonic clock, until `ttl − margin` after the
//!   *send time* of its last successful renewal: the key cannot expire on the server before
//!   then. Past that instant the leader is deposed at once, whatever the network says — the
//!   case of a paused process (SIGSTOP) that wakes up after a successor took over.

use std::time::{Duration, Instant};

/// What the election asks the driver to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionStep {
    /// Nothing until then.
    WaitUntil(Instant),
    /// Read the key; answer with [`Election::on_read`].
    Read,
    /// Create the key (only if absent); answer with [`Election::on_take`].
    Take,
    /// Take over a stale key: update it if its revision is still `revision`; answer with
    /// [`Election::on_take`].
    TakeOver { revision: u64 },
    /// Update the key if its revision is still `revision`; answer with [`Election::on_renew`].
    Renew { revision: u64 },
    /// The lease is lost: stop acting at once.
    Deposed { term: u64 },
}

/// Who holds the key, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub replica: String,
    pub revision: u64,
}

/// The answer to a compare-and-swap write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; the key's new revision.
    Written { revision: u64 },
    /// Refused: someone else holds (or wrote) the key.
    Refused,
    /// No answer (timeout, connection lost): it may or may not have been written.
    Unknown,
}

/// This replica's part in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Follower,
    Leader {
        term: u64,
    },
    /// Deposed: once a leader, never again in this process (the process restarts to follow).
    Deposed {
        term: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the next read.
    Following {
        next_read: Instant,
    },
    /// A read, create or adopting renewal is in flight.
    Asking,
    /// Our own record was found (a create whose answer was lost): renew it to learn our lease.
    Adopting {
        revision: u64,
    },
    /// That renewal is in flight; the record's revision is the term.
    AdoptSent {
        term: u64,
    },
    Leading {
        term: u64,
        revision: u64,
        valid_until: Instant,
        next_renew: Instant,
        renewing: bool,
    },
    Deposed {
        term: u64,
    },
}

/// Timings of the election.
#[derive(Debug, Clone, Copy)]
pub struct ElectionTimings {
    pub ttl: Duration,
    pub renew_interval: Duration,
    pub poll_interval: Duration,
}

impl ElectionTimings {
    /// What the lease is cut short by: clocks drift, and the server's expiry timer is not
    /// exact. A tenth of the TTL, at least half a second.
    fn margin(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(500))
    }

    /// How long a follower must see the same revision before the holder's lease has surely
    /// ended: its lease ends `margin` earlier, counted from before the revision existed.
    fn stale_after(&self) -> Duration {
        self.ttl - self.margin() / 2
    }

    /// After a failed renewal, the next try.
    fn retry(&self) -> Duration {
        (self.renew_interval / 4).max(Duration::from_millis(200))
    }
}

/// The election state machine of one replica.
#[derive(Debug)]
pub struct Election {
    replica: String,
    timings: ElectionTimings,
    state: State,
    /// Another replica's record as last read: its revision and when this replica may take it
    /// over (`stale_after`, less this replica's random share, from when it was first seen).
    seen: Option<(u64, Instant)>,
    /// Draws the random shares that keep followers out of step (seeded by the caller).
    rng: fastrand::Rng,
}

impl Election {
    /// `seed` seeds the random shares; give each replica its own.
    pub fn new(replica: String, timings: ElectionTimings, now: Instant, seed: u64) -> Self {
        Self {
            replica,
            timings,
            state: State::Following { next_read: now },
            seen: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// A random share of a quarter of `span`.
    fn early_by(&mut self, span: Duration) -> Duration {
        (span / 4).mul_f64(self.rng.f64())
    }

    pub fn role(&self) -> Role {
        match self.state {
            State::Leading { term, .. } => Role::Leader { term },
            State::Deposed { term } => Role::Deposed { term },
            _ => Role::Follower,
        }
    }

    /// Until when, by the monotonic clock, the lease is ours (`None` unless leading).
    pub fn valid_until(&self) -> Option<Instant> {
        match self.state {
            State::Leading { valid_until, .. } => Some(valid_until),
            _ => None,
        }
    }

    /// What to do now.
    pub fn step(&mut self, now: Instant) -> ElectionStep {
        match self.state {
            State::Following { next_read } if now >= next_read => {
                self.state = State::Asking;
                ElectionStep::Read
            }
            State::Following { next_read } => ElectionStep::WaitUntil(next_read),
            // The driver answers every request before asking again.
            State::Asking => ElectionStep::WaitUntil(now + self.timings.poll_interval),
            State::Adopting { revision } => {
                self.state = State::AdoptSent { term: revision };
                ElectionStep::Renew { revision }
            }
            State::AdoptSent { .. } => ElectionStep::WaitUntil(now + self.timings.poll_interval),
            State::Leading {
                term, valid_until, ..
            } if now >= valid_until => {
                self.state = State::Deposed { term };
                ElectionStep::Deposed { term }
            }
            State::Leading {
                revision,
                next_renew,
                renewing: false,
                ..
            } if now >= next_renew => {
                if let State::Leading { renewing, .. } = &mut self.state {
                    *renewing = true;
                }
                ElectionStep::Renew { revision }
            }
            State::Leading {
                valid_until,
                next_renew,
                renewing,
                ..
            } => ElectionStep::WaitUntil(if renewing {
                valid_until
            } else {
                next_renew.min(valid_until)
            }),
            State::Deposed { term } => ElectionStep::Deposed { term },
        }
    }

    /// The key as read at `now`: free (`None`) means take it.
    pub fn on_read(&mut self, now: Instant, holder: Option<LeaseHolder>) -> ElectionStep {
        if self.state != State::Asking {
            return self.step(now);
        }
        match holder {
            None => {
                self.state = State::Asking;
                ElectionStep::Take
            }
            Some(holder) if holder.replica == self.replica => {
                self.state = State::Adopting {
                    revision: holder.revision,
                };
                self.step(now)
            }
            Some(holder) => {
                let stale_at = match self.seen {
                    Some((revision, stale_at)) if revision == holder.revision => stale_at,
                    _ => now + self.timings.stale_after() - self.early_by(self.timings.margin()),
                };
                self.seen = Some((holder.revision, stale_at));
                if now >= stale_at {
                    return ElectionStep::TakeOver {
                        revision: holder.revision,
                    };
                }
                let next_read = self.next_read(now).min(stale_at);
                self.state = State::Following { next_read };
                self.step(now)
            }
        }
    }

    /// The answer to a read that failed: try again later.
    pub fn on_read_failed(&mut self, now: Instant) {
        if self.state == State::Asking {
            self.follow(now);
        }
    }

    /// The answer to `create` (or to the update taking over a stale key), sent at `sent_at`.
    pub fn on_take(&mut self, sent_at: Instant, now: Instant, outcome: WriteOutcome) {
        if self.state != State::Asking {
            return;
        }
        match outcome {
            WriteOutcome::Written { revision } => self.lead(revision, revision, sent_at),
            WriteOutcome::Refused => self.follow(now),
            // Perhaps written: the next read tells (our own record is adopted).
            WriteOutcome::Unknown => self.state = State::Following { next_read: now },
        }
    }

    /// The answer to a renewal (or an adoption), sent at `sent_at`.
    pub fn on_renew(&mut self, sent_at: Instant, now: Instant, outcome: WriteOutcome) {
        match (&mut self.state, outcome) {
            (State::AdoptSent { term }, WriteOutcome::Written { revision }) => {
                let term = *term;
                self.lead(term, revision, sent_at);
            }
            (State::AdoptSent { .. }, _) => self.follow(now),
            (
                State::Leading {
                    revision: current,
                    valid_until,
                    next_renew,
                    renewing,
                    ..
                },
                WriteOutcome::Written { revision },
            ) => {
                *current = revision;
                *valid_until =
                    (*valid_until).max(sent_at + self.timings.ttl - self.timings.margin());
                *next_renew = sent_at + self.timings.renew_interval;
                *renewing = false;
            }
            (State::Leading { term, .. }, WriteOutcome::Refused) => {
                self.state = State::Deposed { term: *term };
            }
            (
                State::Leading {
                    next_renew,
                    renewing,
                    ..
                },
                WriteOutcome::Unknown,
            ) => {
                *next_renew = now + self.timings.retry();
                *renewing = false;
            }
            _ => {}
        }
    }

    fn follow(&mut self, now: Instant) {
        self.state = State::Following {
            next_read: self.next_read(now),
        };
    }

    /// When a follower reads next: `poll_interval` from now, less a random share.
    fn next_read(&mut self, now: Instant) -> Instant {
        now + self.timings.poll_interval - self.early_by(self.timings.poll_interval)
    }

    fn lead(&mut self, term: u64, revision: u64, sent_at: Instant) {
        self.state = State::Leading {
            term,
            revision,
            valid_until: sent_at + self.timings.ttl - self.timings.margin(),
            next_renew: sent_at + self.timings.renew_interval,
            renewing: false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMINGS: ElectionTimings = ElectionTimings {
        ttl: Duration::from_secs(15),
        renew_interval: Duration::from_secs(5),
        poll_interval: Duration::from_secs(2),
    };

    fn holder(replica: &str, revision: u64) -> Option<LeaseHolder> {
        Some(LeaseHolder {
            replica: replica.to_owned(),
            revision,
        })
    }

    fn leader(now: Instant) -> Election {
        let mut e = Election::new("a".into(), TIMINGS, now, 1);
        assert_eq!(e.step(now), ElectionStep::Read);
        assert_eq!(e.on_read(now, None), ElectionStep::Take);
        e.on_take(now, now, WriteOutcome::Written { revision: 7 });
        assert_eq!(e.role(), Role::Leader { term: 7 });
        e
    }

    #[test]
    fn a_free_key_is_taken_and_its_revision_is_the_term() {
        let t0 = Instant::now();
        let e = leader(t0);
        assert_eq!(e.valid_until(), Some(t0 + Duration::from_millis(13_500)));
    }

    #[test]
    fn a_follower_polls_while_someone_else_holds_the_key() {
        let t0 = Instant::now();
        let mut e = Election::new("b".into(), TIMINGS, t0, 2);
        assert_eq!(e.step(t0), ElectionStep::Read);
        let ElectionStep::WaitUntil(next) = e.on_read(t0, holder("a", 3)) else {
            panic!("a follower waits");
        };
        // Every 2 s, up to a quarter of that early.
        assert!(next > t0 + Duration::from_millis(1_500) && next <= t0 + Duration::from_secs(2));
        assert_eq!(e.step(next), ElectionStep::Read);
        assert_eq!(e.role(), Role::Follower);
    }

    /// When a follower first reading `a`'s revision 3 at `t0`, and every read after, takes
    /// the key over; `seed` seeds its random shares.
    fn take_over_at(t0: Instant, seed: u64) -> (Election, Instant) {
        let mut e = Election::new("b".into(), TIMINGS, t0, seed);
        let mut now = t0;
        let step = loop {
            match e.step(now) {
                ElectionStep::Read => match e.on_read(now, holder("a", 3)) {
                    ElectionStep::WaitUntil(until) => now = until,
                    other => break other,
                },
                ElectionStep::WaitUntil(until) => now = until,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(step, ElectionStep::TakeOver { revision: 3 });
        (e, now)
    }

    #[test]
    fn a_revision_unchanged_past_the_holders_lease_is_taken_over_before_it_expires() {
        let t0 = Instant::now();
        let (mut e, now) = take_over_at(t0, 2);
        // The holder's lease (13.5 s from before t0) ended; the server's expiry (15 s) has
        // not: `ttl − margin / 2` (14.25 s), up to a quarter of the margin early.
        assert!(now >= t0 + Duration::from_millis(13_875), "{:?}", now - t0);
        assert!(now <= t0 + Duration::from_millis(14_250), "{:?}", now - t0);
        e.on_take(now, now, WriteOutcome::Written { revision: 4 });
        assert_eq!(e.role(), Role::Leader { term: 4 });
    }

    #[test]
    fn followers_that_saw_the_same_revision_together_take_it_over_apart() {
        // Replicas started together read in step; a nats-server before 2.9.21 can accept two
        // compare-and-swap writes a few milliseconds apart, so they must not write in step.
        let t0 = Instant::now();
        let mut times: Vec<Instant> = (0..20).map(|seed| take_over_at(t0, seed).1).collect();
        times.sort();
        let closest = times.windows(2).map(|w| w[1] - w[0]).min().unwrap();
        assert!(
            closest > Duration::ZERO,
            "two followers took over at the same instant"
        );
        let spread = *times.last().unwrap() - times[0];
        assert!(
            spread > Duration::from_millis(200),
            "take-overs within {spread:?}"
        );
    }

    #[test]
    fn a_renewed_revision_restarts_the_wait_and_a_refused_take_over_means_following() {
        let t0 = Instant::now();
        let mut e = Election::new("b".into(), TIMINGS, t0, 2);
        e.step(t0);
        e.on_read(t0, holder("a", 3));
        // Renewed at 10 s: seen anew, so not stale at 14.25 s.
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(e.step(t10), ElectionStep::Read);
        assert!(matches!(
            e.on_read(t10, holder("a", 4)),
            ElectionStep::WaitUntil(_)
        ));
        let t15 = t0 + Duration::from_millis(14_250);
        assert_eq!(e.step(t15), ElectionStep::Read);
        assert!(matches!(
            e.on_read(t15, holder("a", 4)),
            ElectionStep::WaitUntil(_)
        ));
        // Stale at last, but the holder renewed just before the take-over: refused.
        let stale = t10 + Duration::from_millis(14_250);
        assert_eq!(e.step(stale), ElectionStep::Read);
        assert_eq!(
            e.on_read(stale, holder("a", 4)),
            ElectionStep::TakeOver { revision: 4 }
        );
        e.on_take(stale, stale, WriteOutcome::Refused);
        assert_eq!(e.role(), Role::Follower);
    }

    #[test]
    fn losing_the_race_to_create_means_following() {
        let t0 = Instant::now();
        let mut e = Election::new("b".into(), TIMINGS, t0, 2);
        e.step(t0);
        assert_eq!(e.on_read(t0, None), ElectionStep::Take);
        e.on_take(t0, t0, WriteOutcome::Refused);
        assert_eq!(e.role(), Role::Follower);
    }

    #[test]
    fn the_leader_renews_every_interval_and_keeps_its_term() {
        let t0 = Instant::now();
        let mut e = leader(t0);
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(e.step(t0), ElectionStep::WaitUntil(t5));
        assert_eq!(e.step(t5), ElectionStep::Renew { revision: 7 });
        e.on_renew(t5, t5, WriteOutcome::Written { revision: 9 });
        assert_eq!(e.role(), Role::Leader { term: 7 });
        assert_eq!(e.valid_until(), Some(t5 + Duration::from_millis(13_500)));
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(e.step(t10), ElectionStep::Renew { revision: 9 });
    }

    #[test]
    fn a_leader_that_cannot_renew_is_deposed_when_its_lease_ends_by_its_own_clock() {
        let t0 = Instant::now();
        let mut e = leader(t0);
        let mut now = t0 + Duration::from_secs(5);
        // Every renewal goes unanswered (NATS unreachable).
        loop {
            match e.step(now) {
                ElectionStep::Renew { .. } => e.on_renew(now, now, WriteOutcome::Unknown),
                ElectionStep::WaitUntil(until) => now = until,
                ElectionStep::Deposed { term } => {
                    assert_eq!(term, 7);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(now, t0 + Duration::from_millis(13_500));
        assert_eq!(e.role(), Role::Deposed { term: 7 });
    }

    #[test]
    fn a_paused_leader_is_deposed_at_its_first_step_after_waking() {
        let t0 = Instant::now();
        let mut e = leader(t0);
        // SIGSTOP for a minute: the first look at the clock afterwards deposes.
        let woke = t0 + Duration::from_secs(60);
        assert_eq!(e.step(woke), ElectionStep::Deposed { term: 7 });
        // And a late answer to a renewal sent before the pause changes nothing.
        e.on_renew(t0, woke, WriteOutcome::Written { revision: 8 });
        assert_eq!(e.role(), Role::Deposed { term: 7 });
    }

    #[test]
    fn a_refused_renewal_deposes_at_once() {
        let t0 = Instant::now();
        let mut e = leader(t0);
        let t5 = t0 + Duration::from_secs(5);
        e.step(t5);
        e.on_renew(t5, t5, WriteOutcome::Refused);
        assert_eq!(e.step(t5), ElectionStep::Deposed { term: 7 });
    }

    #[test]
    fn a_create_whose_answer_was_lost_is_adopted_by_renewing_it() {
        let t0 = Instant::now();
        let mut e = Election::new("a".into(), TIMINGS, t0, 1);
        e.step(t0);
        e.on_read(t0, None);
        e.on_take(t0, t0, WriteOutcome::Unknown);
        assert_eq!(e.step(t0), ElectionStep::Read);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            e.on_read(t1, holder("a", 12)),
            ElectionStep::Renew { revision: 12 }
        );
        e.on_renew(t1, t1, WriteOutcome::Written { revision: 13 });
        assert_eq!(e.role(), Role::Leader { term: 12 });
        assert_eq!(e.valid_until(), Some(t1 + Duration::from_millis(13_500)));
    }

    #[test]
    fn a_slow_renewal_never_extends_the_lease_past_its_send_time() {
        let t0 = Instant::now();
        let mut e = leader(t0);
        let t5 = t0 + Duration::from_secs(5);
        e.step(t5);
        // Answered 8 s after it was sent: the lease counts from the send.
        e.on_renew(
            t5,
            t5 + Duration::from_secs(8),
            WriteOutcome::Written { revision: 8 },
        );
        assert_eq!(e.valid_until(), Some(t5 + Duration::from_millis(13_500)));
    }
}
