//! The greeter's handlers, free of I/O: `SayHello` answers one greeting, `SayHelloRepeatedly`
//! sends `times` greetings through a [`ReplyStream`], pausing between them. The messages are
//! those of `examples/greeter`.

use std::time::Duration;

use connect_proto_core::{Code, MethodSpec, Status};

use crate::greet::greeter::{SAY_HELLO, SAY_HELLO_REPEATEDLY};
use crate::greet::{HelloReply, HelloRequest, RepeatRequest};

/// The most greetings `SayHelloRepeatedly` sends for one request.
pub const MAX_REPEATS: u32 = 10;

/// The default pause between two greetings of `SayHelloRepeatedly`.
const DEFAULT_STREAM_INTERVAL: Duration = Duration::from_millis(10);

/// How the greeter behaves.
#[derive(Clone, Debug)]
pub struct GreeterOptions {
    stream_interval: Duration,
}

impl Default for GreeterOptions {
    fn default() -> Self {
        GreeterOptions {
            stream_interval: DEFAULT_STREAM_INTERVAL,
        }
    }
}

impl GreeterOptions {
    /// The defaults: 10 ms between streamed greetings.
    pub fn new() -> Self {
        GreeterOptions::default()
    }

    /// The pause between two greetings of `SayHelloRepeatedly` (the call's deadline cuts it
    /// short).
    #[must_use]
    pub fn stream_interval(mut self, interval: Duration) -> Self {
        self.stream_interval = interval;
        self
    }
}

/// The methods this server implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `SayHello`, unary.
    SayHello,
    /// `SayHelloRepeatedly`, server streaming.
    SayHelloRepeatedly,
}

/// The method at `path`, with its spec for the core; `None` for any other path (the core
/// answers `unimplemented`).
pub(crate) fn route(path: &str) -> Option<(Route, MethodSpec)> {
    if path == SAY_HELLO.path() {
        Some((Route::SayHello, SAY_HELLO.clone()))
    } else if path == SAY_HELLO_REPEATEDLY.path() {
        Some((Route::SayHelloRepeatedly, SAY_HELLO_REPEATEDLY.clone()))
    } else {
        None
    }
}

/// Where a streaming handler sends its replies.
pub(crate) trait ReplyStream {
    /// Sends one reply; an error ends the handler (the call is over: deadline, client gone).
    fn send(&mut self, reply: &HelloReply) -> Result<(), Status>;
    /// Waits `pause`, or less if the call's deadline comes first (then fails with it).
    fn pause(&mut self, pause: Duration) -> Result<(), Status>;
}

/// `SayHello`: one greeting.
pub(crate) fn say_hello(request: &HelloRequest) -> Result<HelloReply, Status> {
    let name = checked_name(&request.name)?;
    Ok(reply(format!("Hello, {name}!")))
}

/// `SayHelloRepeatedly`: `times` greetings, `options.stream_interval` apart.
pub(crate) fn say_hello_repeatedly(
    request: &RepeatRequest,
    options: &GreeterOptions,
    replies: &mut impl ReplyStream,
) -> Result<(), Status> {
    let name = checked_name(&request.name)?;
    let times = request.times;
    if !(1..=MAX_REPEATS).contains(&times) {
        return Err(Status::new(
            Code::OutOfRange,
            format!("times must be between 1 and {MAX_REPEATS}, not {times}"),
        ));
    }
    for round in 1..=times {
        if round > 1 {
            replies.pause(options.stream_interval)?;
        }
        replies.send(&reply(format!("Hello, {name}! ({round}/{times})")))?;
    }
    Ok(())
}

/// `name`, unless it is empty (`invalid_argument`).
fn checked_name(name: &str) -> Result<&str, Status> {
    if name.is_empty() {
        Err(Status::invalid_argument("name must not be empty"))
    } else {
        Ok(name)
    }
}

fn reply(message: String) -> HelloReply {
    HelloReply {
        message,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records replies; the deadline strikes after `budget` pauses.
    struct Recorder {
        replies: Vec<String>,
        budget: usize,
    }

    impl ReplyStream for Recorder {
        fn send(&mut self, reply: &HelloReply) -> Result<(), Status> {
            self.replies.push(reply.message.clone());
            Ok(())
        }

        fn pause(&mut self, _: Duration) -> Result<(), Status> {
            match self.budget.checked_sub(1) {
                Some(left) => {
                    self.budget = left;
                    Ok(())
                }
                None => Err(Status::deadline_exceeded("late")),
            }
        }
    }

    fn repeat(name: &str, times: u32) -> RepeatRequest {
        RepeatRequest {
            name: name.into(),
            times,
            ..Default::default()
        }
    }

    #[test]
    fn routes_the_two_methods_only() {
        assert_eq!(
            route("/connectrpc.greet.v1.Greeter/SayHello").map(|r| r.0),
            Some(Route::SayHello)
        );
        assert_eq!(
            route("/connectrpc.greet.v1.Greeter/SayHelloRepeatedly").map(|r| r.0),
            Some(Route::SayHelloRepeatedly)
        );
        assert!(route("/connectrpc.greet.v1.Greeter/Converse").is_none());
        assert!(SAY_HELLO.allows_get());
    }

    #[test]
    fn greets_and_checks_names() {
        let request = HelloRequest {
            name: "Ada".into(),
            ..Default::default()
        };
        assert_eq!(say_hello(&request).unwrap().message, "Hello, Ada!");
        let status = say_hello(&HelloRequest::default()).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    #[test]
    fn streams_until_done_or_late() {
        let options = GreeterOptions::new();
        let mut all = Recorder {
            replies: Vec::new(),
            budget: usize::MAX,
        };
        say_hello_repeatedly(&repeat("Grace", 3), &options, &mut all).unwrap();
        assert_eq!(
            all.replies,
            [
                "Hello, Grace! (1/3)",
                "Hello, Grace! (2/3)",
                "Hello, Grace! (3/3)"
            ]
        );

        let mut late = Recorder {
            replies: Vec::new(),
            budget: 1,
        };
        let status = say_hello_repeatedly(&repeat("Grace", 5), &options, &mut late).unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(late.replies.len(), 2);

        for times in [0, MAX_REPEATS + 1] {
            let status = say_hello_repeatedly(&repeat("Grace", times), &options, &mut all);
            assert_eq!(status.unwrap_err().code(), Code::OutOfRange);
        }
    }
}
