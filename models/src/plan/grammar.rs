//! The plan grammar as a character automaton: which character may come next, and how many
//! characters at least it takes to finish from here. The grammar is compact JSON with no
//! whitespace:
//!
//! ```text
//! plan    := {"subtasks":[ (subtask (, subtask)*)? ]}
//! subtask := {"skill":" SKILL ","args":{ (pair (, pair)*)? }}
//! pair    := " KEY ":" VALUE "
//! ```
//!
//! SKILL is one of the configured skill names, KEY is `[a-z_]{1,max_key_len}`, VALUE is
//! printable ASCII without `"` or `\` up to `max_value_len`; at most `max_subtasks` subtasks
//! and `max_args` pairs each. Every string is bounded, so every state has a finite shortest
//! completion, which is what lets decoding always finish within its token budget.

use super::PlanSchema;

const OPEN: &str = "{\"subtasks\":[";
const SUBTASK_OPEN: &str = "{\"skill\":\"";
const ARGS_OPEN: &str = "\",\"args\":{";
const CLOSE_SUBTASK: &str = "}}";
const CLOSE_PLAN: &str = "]}";

/// Where the automaton is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Emitting the fixed text `literal[at..]`, then going to `then`.
    Literal {
        literal: &'static str,
        at: usize,
        then: Next,
    },
    /// After `[` or `,` inside the subtask list, or after a subtask.
    SubtaskList {
        subtasks: usize,
        expect_item: bool,
    },
    /// Inside a skill name: `typed` characters so far, matching some skill's prefix.
    Skill {
        subtasks: usize,
        typed: String,
    },
    /// After `{` or `,` inside args, or after a pair.
    ArgList {
        subtasks: usize,
        args: usize,
        expect_item: bool,
    },
    Key {
        subtasks: usize,
        args: usize,
        len: usize,
    },
    Value {
        subtasks: usize,
        args: usize,
        len: usize,
    },
    Done,
}

/// What follows a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    SubtaskList {
        subtasks: usize,
        expect_item: bool,
    },
    Skill {
        subtasks: usize,
    },
    ArgList {
        subtasks: usize,
        args: usize,
        expect_item: bool,
    },
    Key {
        subtasks: usize,
        args: usize,
    },
    Value {
        subtasks: usize,
        args: usize,
    },
    Done,
}

impl State {
    pub fn start() -> Self {
        State::Literal {
            literal: OPEN,
            at: 0,
            then: Next::SubtaskList {
                subtasks: 0,
                expect_item: false,
            },
        }
    }

    fn enter(next: Next) -> Self {
        match next {
            Next::SubtaskList { subtasks, expect_item } => State::SubtaskList { subtasks, expect_item },
            Next::Skill { subtasks } => State::Skill {
                subtasks,
                typed: String::new(),
            },
            Next::ArgList {
                subtasks,
                args,
                expect_item,
            } => State::ArgList {
                subtasks,
                args,
                expect_item,
            },
            Next::Key { subtasks, args } => State::Key { subtasks, args, len: 0 },
            Next::Value { subtasks, args } => State::Value { subtasks, args, len: 0 },
            Next::Done => State::Done,
        }
    }

    fn literal(literal: &'static str, then: Next) -> Self {
        State::Literal { literal, at: 0, then }
    }

    /// The state after `c`, or `None` if `c` cannot come next.
    pub fn step(&self, c: char, schema: &PlanSchema) -> Option<State> {
        let state = match self {
            State::Literal { literal, at, then } => {
                if literal[*at..].chars().next()? != c {
                    return None;
                }
                if at + 1 == literal.len() {
                    return Some(State::enter(*then));
                }
                State::Literal {
                    literal,
                    at: at + 1,
                    then: *then,
                }
            }
            State::SubtaskList { subtasks, expect_item } => match c {
                '{' if (*expect_item || *subtasks == 0) && *subtasks < schema.max_subtasks => {
                    State::literal(&SUBTASK_OPEN[1..], Next::Skill { subtasks: *subtasks })
                }
                ',' if !expect_item && *subtasks > 0 && *subtasks < schema.max_subtasks => State::SubtaskList {
                    subtasks: *subtasks,
                    expect_item: true,
                },
                ']' if !expect_item => State::literal(&CLOSE_PLAN[1..], Next::Done),
                _ => return None,
            },
            State::Skill { subtasks, typed } => {
                if c == '"' {
                    if !schema.skills.iter().any(|s| s == typed) {
                        return None;
                    }
                    let next = Next::ArgList {
                        subtasks: *subtasks,
                        args: 0,
                        expect_item: false,
                    };
                    return Some(State::literal(&ARGS_OPEN[1..], next));
                }
                let mut longer = typed.clone();
                longer.push(c);
                if !schema.skills.iter().any(|s| s.starts_with(&longer)) {
                    return None;
                }
                State::Skill {
                    subtasks: *subtasks,
                    typed: longer,
                }
            }
            State::ArgList {
                subtasks,
                args,
                expect_item,
            } => match c {
                '"' if (*expect_item || *args == 0) && *args < schema.max_args => State::Key {
                    subtasks: *subtasks,
                    args: *args,
                    len: 0,
                },
                ',' if !expect_item && *args > 0 && *args < schema.max_args => State::ArgList {
                    subtasks: *subtasks,
                    args: *args,
                    expect_item: true,
                },
                '}' if !expect_item => State::literal(
                    &CLOSE_SUBTASK[1..],
                    Next::SubtaskList {
                        subtasks: subtasks + 1,
                        expect_item: false,
                    },
                ),
                _ => return None,
            },
            State::Key { subtasks, args, len } => match c {
                '"' if *len > 0 => State::literal(
                    ":\"",
                    Next::Value {
                        subtasks: *subtasks,
                        args: *args,
                    },
                ),
                'a'..='z' | '_' if *len < schema.max_key_len => State::Key {
                    subtasks: *subtasks,
                    args: *args,
                    len: len + 1,
                },
                _ => return None,
            },
            State::Value { subtasks, args, len } => match c {
                '"' => State::ArgList {
                    subtasks: *subtasks,
                    args: args + 1,
                    expect_item: false,
                },
                ' '..='~' if c != '\\' && *len < schema.max_value_len => State::Value {
                    subtasks: *subtasks,
                    args: *args,
                    len: len + 1,
                },
                _ => return None,
            },
            State::Done => return None,
        };
        Some(state)
    }

    /// The fewest characters that finish a plan from here.
    pub fn min_completion(&self, schema: &PlanSchema) -> usize {
        // Closing an open subtask's args then the subtask then the plan.
        let close_subtask = CLOSE_SUBTASK.len() + CLOSE_PLAN.len();
        match self {
            State::Literal { literal, at, then } => literal.len() - at + Self::after(*then, schema),
            State::SubtaskList { expect_item: true, .. } => {
                SUBTASK_OPEN.len() + shortest_skill(schema) + ARGS_OPEN.len() + close_subtask
            }
            State::SubtaskList { .. } => CLOSE_PLAN.len(),
            State::Skill { typed, .. } => {
                let rest = schema
                    .skills
                    .iter()
                    .filter(|s| s.starts_with(typed.as_str()))
                    .map(|s| s.len() - typed.len())
                    .min()
                    .unwrap_or(usize::MAX / 4);
                rest + ARGS_OPEN.len() + close_subtask
            }
            State::ArgList { expect_item: true, .. } => "\"k\":\"\"".len() + close_subtask,
            State::ArgList { .. } => close_subtask,
            State::Key { len, .. } => usize::from(*len == 0) + "\":\"\"".len() + close_subtask,
            State::Value { .. } => 1 + close_subtask,
            State::Done => 0,
        }
    }

    fn after(next: Next, schema: &PlanSchema) -> usize {
        State::enter(next).min_completion(schema)
    }
}

fn shortest_skill(schema: &PlanSchema) -> usize {
    schema.skills.iter().map(String::len).min().unwrap_or(0)
}
