//! The log (kept for the Log tab) and the transient notifications drawn over the UI.

use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub level: Level,
    pub message: String,
    pub at: SystemTime,
}

/// How long a notification stays on screen (errors longer: they need reading).
const INFO_TTL: Duration = Duration::from_secs(4);
const ERROR_TTL: Duration = Duration::from_secs(10);
/// Log entries kept in memory.
const MAX_ENTRIES: usize = 2000;

#[derive(Default)]
pub struct Log {
    pub entries: Vec<Entry>,
    /// Indices into `entries` still shown as notifications, with when they appeared.
    pub toasts: Vec<(usize, Instant)>,
}

impl Log {
    pub fn push(&mut self, level: Level, message: impl Into<String>) {
        let message = message.into();
        match level {
            Level::Error => log::error!("{message}"),
            Level::Warning => log::warn!("{message}"),
            Level::Info => log::info!("{message}"),
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.remove(0);
            self.toasts.retain_mut(|(i, _)| {
                *i = i.wrapping_sub(1);
                *i < MAX_ENTRIES
            });
        }
        self.entries.push(Entry {
            level,
            message,
            at: SystemTime::now(),
        });
        self.toasts.push((self.entries.len() - 1, Instant::now()));
    }
    pub fn info(&mut self, m: impl Into<String>) {
        self.push(Level::Info, m);
    }
    pub fn error(&mut self, m: impl Into<String>) {
        self.push(Level::Error, m);
    }
    /// Drops expired notifications; returns whether any remain (to keep repainting).
    pub fn expire_toasts(&mut self) -> bool {
        let entries = &self.entries;
        self.toasts.retain(|(i, t)| {
            let ttl = if entries.get(*i).is_some_and(|e| e.level == Level::Error) {
                ERROR_TTL
            } else {
                INFO_TTL
            };
            t.elapsed() < ttl
        });
        !self.toasts.is_empty()
    }
    pub fn dismiss(&mut self, entry: usize) {
        self.toasts.retain(|(i, _)| *i != entry);
    }
    pub fn errors(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.level == Level::Error)
    }
}
