//! A header every response carries while it is set. A development server uses
//! it to mark answers from code older than what is on disk
//! (`Spikard-Stale: app.py:12 SyntaxError`), so that stale code is never
//! served silently.
//!
//! Set rarely, read on every response: the read is one relaxed load while no
//! notice is set, and a short lock only while one is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use http::{HeaderMap, HeaderName, HeaderValue};

#[derive(Default)]
pub struct Notice {
    set: AtomicBool,
    header: Mutex<Option<(HeaderName, HeaderValue)>>,
}

impl Notice {
    /// From now on every response carries `header`; `None`: no header.
    pub fn set(&self, header: Option<(HeaderName, HeaderValue)>) {
        let mut current = self.header.lock().unwrap_or_else(|e| e.into_inner());
        self.set.store(header.is_some(), Ordering::Relaxed);
        *current = header;
    }

    /// Adds the header, if one is set, to a response's `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.set.load(Ordering::Relaxed) {
            return;
        }
        let current = self.header.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, value)) = &*current {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_header_is_added_until_cleared() {
        let notice = Notice::default();
        let mut headers = HeaderMap::new();
        notice.apply(&mut headers);
        assert!(headers.is_empty());
        let name = HeaderName::from_static("spikard-stale");
        notice.set(Some((
            name.clone(),
            HeaderValue::from_static("app.py:3 SyntaxError"),
        )));
        notice.apply(&mut headers);
        assert_eq!(headers[&name], "app.py:3 SyntaxError");
        notice.set(None);
        let mut fresh = HeaderMap::new();
        notice.apply(&mut fresh);
        assert!(fresh.is_empty());
    }
}
