//! Why a request to Microsoft (or anything else) never got an answer, in plain words. An HTTP
//! client's error wraps the cause in layers ("error sending request for url (…): client error
//! (Connect): tcp connect error: Connection refused (os error 111)") that repeat the URL the
//! caller's own message already names; a person needs the cause: refused, timed out, unknown
//! host, certificate refused, connection dropped.

use crate::redact;

/// The cause of a transport failure in plain words, redacted; an unrecognised cause is given as
/// the innermost error's own text.
pub fn transport_words(error: &(dyn std::error::Error + 'static)) -> String {
    let mut causes = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        causes.push(e.to_string());
        next = e.source();
    }
    // The client's own layer names the URL ("error sending request for url (…)"): a host or
    // path that happens to hold "tls" or "timeout" must not decide the cause, so it is left out.
    let all = causes
        .iter()
        .filter(|c| !c.contains("for url ("))
        .map(|c| c.to_lowercase())
        .collect::<Vec<_>>()
        .join(": ");
    let has = |needles: &[&str]| needles.iter().any(|n| all.contains(n));
    let plain = if has(&["connection refused"]) {
        "the connection was refused: nothing listens at that address and port"
    } else if has(&["timed out", "timeout", "deadline has elapsed"]) {
        "no answer came in time"
    } else if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no such host",
    ]) {
        "the host name could not be resolved"
    } else if has(&[
        "network is unreachable",
        "no route to host",
        "host is unreachable",
    ]) {
        "the network has no route to that host"
    } else if has(&["certificate", "tls", "ssl", "handshake"]) {
        "the secure connection failed: the server's TLS certificate was not accepted"
    } else if has(&[
        "connection reset",
        "broken pipe",
        "connection closed",
        "incomplete message",
        "unexpected eof",
    ]) {
        "the connection was closed before the answer was complete"
    } else {
        return redact::text(causes.last().map_or("", String::as_str));
    };
    plain.to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    fn chain(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |inner: Option<Layer>, text| {
                Some(Layer(text, inner.map(Box::new)))
            })
            .unwrap()
    }

    #[test]
    fn the_cause_is_named_once_without_the_client_s_layers() {
        let refused = chain(&[
            "error sending request for url (http://127.0.0.1:9/t/token?client_secret=s3cr3t)",
            "client error (Connect)",
            "tcp connect error",
            "Connection refused (os error 111)",
        ]);
        let words = transport_words(&refused);
        assert_eq!(
            words,
            "the connection was refused: nothing listens at that address and port"
        );
        assert!(!words.contains("127.0.0.1"));
        let timeout = chain(&[
            "error sending request for url (https://graph.microsoft.com/v1.0/users)",
            "operation timed out",
        ]);
        assert_eq!(transport_words(&timeout), "no answer came in time");
        // A host whose name holds "timeout" does not make a reset connection a timeout.
        let reset = chain(&[
            "error sending request for url (https://timeout.example/v1.0/users)",
            "connection reset by peer",
        ]);
        assert_eq!(
            transport_words(&reset),
            "the connection was closed before the answer was complete"
        );
    }

    #[test]
    fn an_unknown_cause_is_the_innermost_text_redacted() {
        let odd = chain(&["outer", "a proxy at https://p.example/x?token=abc said no"]);
        let words = transport_words(&odd);
        assert!(
            words.starts_with("a proxy at https://p.example/x?token="),
            "{words}"
        );
        assert!(!words.contains("abc"), "{words}");
    }
}
