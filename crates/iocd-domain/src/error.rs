use std::fmt;

/// Error codes of the Defender API's error body (`error.code`) that validation can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequestBody,
    InvalidInput,
    MissingRequiredParameter,
    InvalidHashValue,
    InvalidIpAddress,
    InvalidDomainName,
    InvalidUrl,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequestBody => "InvalidRequestBody",
            ErrorCode::InvalidInput => "InvalidInput",
            ErrorCode::MissingRequiredParameter => "MissingRequiredParameter",
            ErrorCode::InvalidHashValue => "InvalidHashValue",
            ErrorCode::InvalidIpAddress => "InvalidIpAddress",
            ErrorCode::InvalidDomainName => "InvalidDomainName",
            ErrorCode::InvalidUrl => "InvalidUrl",
        }
    }
}

/// Why a request body was refused: which field, and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub code: ErrorCode,
    /// The JSON property at fault (empty when the body as a whole is wrong).
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        ValidationError {
            code,
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn invalid_input(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, field, message)
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValidationError {}
