//! What can go wrong, and the exit code each answers with: the BSD `sysexits.h` codes that
//! rabbitmqctl uses, so scripts written against it can keep testing `$?`.

use thiserror::Error;

/// EX_USAGE: the command line is wrong (unknown verb or option, wrong arguments).
pub const EX_USAGE: u8 = 64;
/// EX_DATAERR: an input file is unreadable or not JSON (rabbitmqctl's code for the same);
/// also a policy definition that is not JSON (rabbitmqctl, which has the node decode it,
/// answers 69 for that: here 69 means only that the API cannot be reached).
pub const EX_DATAERR: u8 = 65;
/// EX_UNAVAILABLE: the management API cannot be reached.
pub const EX_UNAVAILABLE: u8 = 69;
/// EX_SOFTWARE: the API refused or failed the operation.
pub const EX_SOFTWARE: u8 = 70;

#[derive(Debug, Error)]
pub enum CliError {
    /// A command-line mistake; the usage of `verb` (if known) follows the message.
    #[error("{message}")]
    Usage {
        message: String,
        verb: Option<&'static str>,
    },

    /// No HTTP answer at all: nothing listens there, the name does not resolve, a timeout.
    #[error("unable to reach Warren's management API at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The API answered with an error status; `reason` is its `reason` field.
    #[error("{reason}")]
    Api {
        status: u16,
        error: String,
        reason: String,
    },

    /// An input or output file could not be used.
    #[error("{0}")]
    Data(String),
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            verb: None,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } => EX_USAGE,
            CliError::Data(_) => EX_DATAERR,
            CliError::Unreachable { .. } => EX_UNAVAILABLE,
            CliError::Api { .. } => EX_SOFTWARE,
        }
    }

    /// A clearer reason for a bare 404 (`Object Not Found`: the path named nothing), which
    /// is all the API says when the user, vhost or queue of the command does not exist.
    pub fn with_context(self, not_found: impl FnOnce() -> String) -> Self {
        match self {
            CliError::Api {
                status: 404, error, ..
            } if error == "Object Not Found" => CliError::Api {
                status: 404,
                error,
                reason: not_found(),
            },
            other => other,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Api { status: 404, .. })
    }
}

pub type CliResult<T> = Result<T, CliError>;
