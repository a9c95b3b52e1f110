/// A query option the service cannot honour. Maps to HTTP 400 with error code `ODataError`;
/// `message` is meant to be shown to the client as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ODataError {
    pub message: String,
}

impl ODataError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ODataError {
            message: message.into(),
        }
    }

    /// An error inside the text of one query option, e.g. `$filter: position 17: …`.
    pub(crate) fn at(option: &str, position: usize, detail: impl std::fmt::Display) -> Self {
        ODataError::new(format!("{option}: position {position}: {detail}"))
    }
}
