use std::fmt;

/// Every code the API puts in its error body (`error.code`): the one list of them.
///
/// They are names of the Defender API's contract, so they live beside the rules that produce
/// most of them; which HTTP status goes with a code is the HTTP crate's business. Validation
/// produces only the first group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // What validation of a submission produces.
    InvalidRequestBody,
    InvalidInput,
    MissingRequiredParameter,
    InvalidHashValue,
    InvalidIpAddress,
    InvalidDomainName,
    InvalidUrl,
    // What the API adds around validation.
    /// A request the API cannot process for a reason none of the other codes names (the
    /// tenant's quota, an unexpected 4xx status).
    BadRequest,
    /// An OData query option (`$filter`, `$top`, …) that does not parse.
    ODataError,
    /// More than 500 items in an import or a BatchDelete.
    MaximumBatchSizeExceeded,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    /// The client paused too long while sending a request's body.
    RequestTimeout,
    /// A request target longer than the server accepts (414).
    RequestUriTooLong,
    /// A request head with more, or larger, headers than the server accepts (431).
    RequestHeaderFieldsTooLarge,
    TooManyRequests,
    InternalServerError,
    ServiceUnavailable,
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
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::ODataError => "ODataError",
            ErrorCode::MaximumBatchSizeExceeded => "MaximumBatchSizeExceeded",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::MethodNotAllowed => "MethodNotAllowed",
            ErrorCode::RequestEntityTooLarge => "RequestEntityTooLarge",
            ErrorCode::UnsupportedMediaType => "UnsupportedMediaType",
            ErrorCode::RequestTimeout => "RequestTimeout",
            ErrorCode::RequestUriTooLong => "RequestUriTooLong",
            ErrorCode::RequestHeaderFieldsTooLarge => "RequestHeaderFieldsTooLarge",
            ErrorCode::TooManyRequests => "TooManyRequests",
            ErrorCode::InternalServerError => "InternalServerError",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
