//! Telegram's flood limits, kept before sending rather than learnt from a 429: at most one
//! message a second to a chat, and at most twenty a minute to a group (or channel). Edits
//! count as messages.
//!
//! A send *reserves* its slot — the earliest instant that keeps both limits given every
//! slot already reserved — and waits for it; so lanes sending to the same chat queue behind
//! each other instead of racing. A 429's `retry_after` holds the chat until then. The
//! limiter is shared by every Telegram integration of the process and seeded at start with
//! the sends the store remembers, so the limits hold across retries and restarts.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most one message per this long to a chat.
pub const PER_CHAT_INTERVAL: Duration = Duration::from_secs(1);
/// At most [`PER_GROUP_MESSAGES`] messages per this long to a group.
pub const PER_GROUP_WINDOW: Duration = Duration::from_secs(60);
pub const PER_GROUP_MESSAGES: usize = 20;

#[derive(Default)]
struct Chat {
    /// The last [`PER_GROUP_MESSAGES`] slots, oldest first.
    slots: VecDeque<Instant>,
    /// No send before this (a 429's `retry_after`).
    held_until: Option<Instant>,
}

/// The flood limits of every chat this process sends to.
#[derive(Default)]
pub struct RateLimiter {
    chats: Mutex<HashMap<String, Chat>>,
}

impl RateLimiter {
    /// Reserves the next slot to send to `chat` (`group`: a group or channel) at or after
    /// `now`, and returns it; the caller waits until then.
    pub fn reserve(&self, chat: &str, group: bool, now: Instant) -> Instant {
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        let state = chats.entry(chat.to_owned()).or_default();
        let mut at = now.max(state.held_until.unwrap_or(now));
        if let Some(last) = state.slots.back() {
            at = at.max(*last + PER_CHAT_INTERVAL);
        }
        if group && state.slots.len() >= PER_GROUP_MESSAGES {
            let twentieth_last = state.slots[state.slots.len() - PER_GROUP_MESSAGES];
            at = at.max(twentieth_last + PER_GROUP_WINDOW);
        }
        state.slots.push_back(at);
        while state.slots.len() > PER_GROUP_MESSAGES {
            state.slots.pop_front();
        }
        at
    }

    /// Telegram asked to wait: no send to `chat` before `until`.
    pub fn hold(&self, chat: &str, until: Instant) {
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        let state = chats.entry(chat.to_owned()).or_default();
        state.held_until = Some(state.held_until.map_or(until, |held| held.max(until)));
    }

    /// Remembers sends to `chat` made before this process started, `ages` ago (as the
    /// store recorded them), so a restart does not reset the limits.
    pub fn seed(&self, chat: &str, ages: &[Duration], now: Instant) {
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        let state = chats.entry(chat.to_owned()).or_default();
        let mut slots: Vec<Instant> = ages
            .iter()
            .filter(|age| **age < PER_GROUP_WINDOW)
            .filter_map(|age| now.checked_sub(*age))
            .chain(state.slots.iter().copied())
            .collect();
        slots.sort();
        let keep = slots.len().saturating_sub(PER_GROUP_MESSAGES);
        state.slots = slots.into_iter().skip(keep).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Sends `n` messages to `chat` as fast as the limiter lets, waiting on the (paused)
    /// clock; returns when each went out, relative to the start.
    async fn burst(limiter: &RateLimiter, chat: &str, group: bool, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..n {
            let slot = limiter.reserve(chat, group, Instant::now());
            tokio::time::sleep_until(slot).await;
            sent.push(Instant::now() - start);
        }
        sent
    }

    #[tokio::test(start_paused = true)]
    async fn a_private_chat_gets_one_message_a_second() {
        let limiter = RateLimiter::default();
        let sent = burst(&limiter, "42", false, 30).await;
        for (i, at) in sent.iter().enumerate() {
            assert_eq!(*at, SECOND * i as u32);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_gets_twenty_a_minute() {
        let limiter = RateLimiter::default();
        let sent = burst(&limiter, "-100", true, 45).await;
        // The first twenty a second apart, then the 21st a minute after the first, …
        assert_eq!(sent[19], SECOND * 19);
        assert_eq!(sent[20], SECOND * 60);
        assert_eq!(sent[39], SECOND * 79);
        assert_eq!(sent[40], SECOND * 120);
        for window in sent.windows(PER_GROUP_MESSAGES + 1) {
            assert!(window[PER_GROUP_MESSAGES] - window[0] >= PER_GROUP_WINDOW);
        }
        for pair in sent.windows(2) {
            assert!(pair[1] - pair[0] >= SECOND);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn chats_do_not_wait_for_each_other() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert_eq!(limiter.reserve("1", false, now), now);
        assert_eq!(limiter.reserve("2", false, now), now);
        assert_eq!(limiter.reserve("1", false, now), now + SECOND);
        // Two lanes to one chat queue behind each other.
        assert_eq!(limiter.reserve("1", false, now), now + SECOND * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_the_chat() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        limiter.reserve("1", false, now);
        limiter.hold("1", now + SECOND * 30);
        limiter.hold("1", now + SECOND * 5);
        assert_eq!(limiter.reserve("1", false, now), now + SECOND * 30);
        assert_eq!(limiter.reserve("2", false, now), now);
    }

    #[tokio::test(start_paused = true)]
    async fn sends_before_a_restart_still_count() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        // Twenty sends in the last 40 seconds, one of them 2 minutes ago (forgotten).
        let mut ages: Vec<Duration> = (0..20).map(|i| SECOND * (2 * i + 1)).collect();
        ages.push(SECOND * 120);
        limiter.seed("-5", &ages, now);
        // The oldest of the twenty was 39 s ago: the next may go 21 s from now.
        assert_eq!(limiter.reserve("-5", true, now), now + SECOND * 21);
        limiter.seed("7", &[Duration::from_millis(300)], now);
        assert_eq!(
            limiter.reserve("7", false, now),
            now + Duration::from_millis(700)
        );
    }
}
