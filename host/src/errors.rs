//! Errors as one line of text, for logs and answers.

/// An error and what caused it, as one line (a cause already in the text is
/// not repeated): tokio-postgres, for one, says only "db error" and keeps
/// the server's message ("too many connections for role
/// …", "cannot execute INSERT in a read-only transaction") in its source.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("the server's reason")]
    struct Inner;

    #[test]
    fn the_cause_is_in_the_message() {
        assert_eq!(chain(&Outer(Inner)), "outer: the server's reason");
    }
}
