//! Task plans, the VLT role's output: an ordered list of subtasks, each a skill from a
//! configured list with string arguments. [`PlanConstraint`] makes a language model's output
//! a plan whatever its weights: at every step only tokens that keep the text a valid prefix of
//! the plan grammar ([`grammar`]) may be sampled, and only those that still leave room to
//! finish within the token budget. The vocabulary is scanned in sorted order, so a prefix
//! shared by neighbouring tokens is stepped through the grammar once, and every token under a
//! prefix the grammar rejects is skipped without stepping: a plan step walks a trie of the
//! vocabulary, not each of its 49k entries.

pub mod grammar;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::generate::TokenConstraint;
use crate::kernels::Cost;
use crate::tokenizer::Tokenizer;
use grammar::State;

/// What a plan may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSchema {
    pub skills: Vec<String>,
    pub max_subtasks: usize,
    pub max_args: usize,
    pub max_key_len: usize,
    pub max_value_len: usize,
}

impl PlanSchema {
    /// A schema over `skills` with room for 8 subtasks of up to 4 arguments.
    pub fn new(skills: Vec<String>) -> Result<Self> {
        let schema = Self {
            skills,
            max_subtasks: 8,
            max_args: 4,
            max_key_len: 24,
            max_value_len: 48,
        };
        schema.validate()?;
        Ok(schema)
    }

    fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(ModelError::Generation(format!("plan schema: {message}")));
        if self.skills.is_empty() {
            return bad("no skills".into());
        }
        if let Some(skill) = self
            .skills
            .iter()
            .find(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        {
            return bad(format!("skill {skill:?} must be non-empty [a-z_]"));
        }
        if self.max_subtasks == 0 || self.max_key_len == 0 {
            return bad("max_subtasks and max_key_len must be positive".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subtask {
    pub skill: String,
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub subtasks: Vec<Subtask>,
}

impl Plan {
    /// Parses plan JSON and checks it against the schema.
    pub fn parse(text: &str, schema: &PlanSchema) -> Result<Plan> {
        let plan: Plan =
            serde_json::from_str(text).map_err(|e| ModelError::Generation(format!("not a plan: {e}: {text:?}")))?;
        if let Some(task) = plan.subtasks.iter().find(|t| !schema.skills.contains(&t.skill)) {
            return Err(ModelError::Generation(format!("unknown skill {:?}", task.skill)));
        }
        Ok(plan)
    }
}

/// Constrains generation to the plan grammar over a tokenizer's vocabulary.
pub struct PlanConstraint {
    schema: PlanSchema,
    /// The text of every token id (empty for special tokens, which are never allowed).
    token_texts: Vec<String>,
    /// Token ids in the order of their texts, each with the number of leading characters its
    /// text shares with the text before it.
    sorted: Vec<(u32, usize)>,
    /// The vocabulary's text, bytes (what a scan reads).
    text_bytes: u64,
    state: State,
    text: String,
}

impl PlanConstraint {
    pub fn new(schema: PlanSchema, tokenizer: &Tokenizer) -> Result<Self> {
        let token_texts = (0..tokenizer.vocab_size() as u32)
            .map(|id| tokenizer.decode(&[id]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::with_token_texts(schema, token_texts))
    }

    /// A constraint over a vocabulary given as the text of each token id.
    pub fn with_token_texts(schema: PlanSchema, token_texts: Vec<String>) -> Self {
        let mut ids: Vec<u32> = (0..token_texts.len() as u32).collect();
        ids.sort_by(|&a, &b| token_texts[a as usize].cmp(&token_texts[b as usize]));
        let mut sorted = Vec::with_capacity(ids.len());
        let mut previous = "";
        for id in ids {
            let text = token_texts[id as usize].as_str();
            let shared = previous.chars().zip(text.chars()).take_while(|(a, b)| a == b).count();
            sorted.push((id, shared));
            previous = text;
        }
        let text_bytes = token_texts.iter().map(|t| t.len() as u64).sum();
        Self {
            schema,
            token_texts,
            sorted,
            text_bytes,
            state: State::start(),
            text: String::new(),
        }
    }

    /// The fewest tokens a complete plan can take from the start.
    pub fn min_tokens(schema: &PlanSchema) -> usize {
        State::start().min_completion(schema)
    }

    /// The plan text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The state after `text`, if it is a valid continuation.
    fn after(&self, text: &str) -> Option<State> {
        if text.is_empty() {
            return None;
        }
        text.chars()
            .try_fold(self.state.clone(), |state, c| state.step(c, &self.schema))
    }
}

impl TokenConstraint for PlanConstraint {
    fn restrict(&mut self, logits: &mut [f32], remaining: usize) -> Cost {
        let mut allowed = vec![false; logits.len()];
        // `path[d]` is the state after the first d characters of the current token's text.
        let mut path = vec![self.state.clone()];
        // The character count at which the grammar rejected the last stepped text: every
        // following text sharing more characters than that is rejected too.
        let mut rejected_at: Option<usize> = None;
        let mut steps = 0u64;
        for &(id, shared) in &self.sorted {
            if rejected_at.is_some_and(|at| shared > at) {
                continue;
            }
            rejected_at = None;
            path.truncate(shared + 1);
            let text = &self.token_texts[id as usize];
            for c in text.chars().skip(shared) {
                steps += 1;
                match path[path.len() - 1].step(c, &self.schema) {
                    Some(next) => path.push(next),
                    None => {
                        rejected_at = Some(path.len() - 1);
                        break;
                    }
                }
            }
            let fits = path[path.len() - 1].min_completion(&self.schema) < remaining;
            if rejected_at.is_none() && !text.is_empty() && fits {
                if let Some(slot) = allowed.get_mut(id as usize) {
                    *slot = true;
                }
            }
        }
        for (logit, allowed) in logits.iter_mut().zip(&allowed) {
            if !allowed {
                *logit = f32::NEG_INFINITY;
            }
        }
        let entries = self.sorted.len() as u64;
        // A grammar step matches on the state and may clone it (about 20 operations); each
        // entry costs a comparison and a branch, each logit a store.
        Cost::host(
            20 * steps + 4 * entries + 2 * logits.len() as u64,
            self.text_bytes + 8 * entries,
            4 * logits.len() as u64,
        )
    }

    fn advance(&mut self, token: u32) -> Result<()> {
        let text = self.token_texts.get(token as usize).map(String::as_str).unwrap_or("");
        self.state = self
            .after(text)
            .ok_or_else(|| ModelError::Generation(format!("token {token} ({text:?}) breaks the plan grammar")))?;
        self.text.push_str(text);
        Ok(())
    }

    fn is_complete(&self) -> bool {
        self.state == State::Done
    }
}
