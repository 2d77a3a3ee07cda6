//! The vision-language-action role: the SmolVLM architecture whose answer is a chunk of action
//! tokens, conditioned on the camera frame, the current subtask and the joint state, as
//! OpenVLA and pi0-FAST do it. The prompt follows pi0-FAST: `Task: <subtask>, State: <state
//! as 256-bin integers>;` then the answer starts with `Action: ` and only action tokens may
//! follow ([`ActionConstraint`]). Each action token goes to the caller the moment it is
//! sampled, so the motion decoder can start on a chunk before it is complete.
//!
//! Action tokens live in the language model's vocabulary: OpenVLA's bins are its last
//! `bins` ids; FAST token `t` is id `vocab - 1 - skip - t` (pi0-FAST's `fast_skip_tokens`),
//! and the chunk ends at the `|` token.

use std::sync::Arc;

use brainstem_kernels::{Backend, Cost};

use crate::action::{BinTokenizer, FastTokenizer, Normalization};
use crate::error::{ModelError, Result};
use crate::generate::{GenerateOptions, GenerationStats, TokenConstraint};
use crate::vlm::{EncodedFrame, Vlm};

/// pi0-FAST's default gap between the end of the vocabulary and the FAST ids.
pub const FAST_SKIP_TOKENS: u32 = 128;

/// How action tokens sit in the language model's vocabulary.
pub enum ActionVocabulary {
    /// OpenVLA binning; a chunk is exactly `steps x dims` tokens.
    Bins(BinTokenizer),
    /// FAST tokens mapped below the end of the vocabulary, a chunk ended by `end`.
    Fast {
        tokenizer: Arc<FastTokenizer>,
        skip: u32,
        end: u32,
    },
}

/// The ids an action vocabulary occupies in a language model with `lm_vocab` ids.
fn action_range(actions: &ActionVocabulary, lm_vocab: u32) -> Result<(u32, u32)> {
    let (first, last) = match actions {
        ActionVocabulary::Bins(bins) => bins.token_range(),
        ActionVocabulary::Fast { tokenizer, skip, .. } => {
            let highest = lm_vocab as i64 - 1 - *skip as i64;
            let lowest = highest - (tokenizer.vocab_size() as i64 - 1);
            if lowest < 0 {
                return Err(ModelError::Generation(format!(
                    "{} FAST tokens {skip} below the end do not fit a vocabulary of {lm_vocab}",
                    tokenizer.vocab_size()
                )));
            }
            (lowest as u32, highest as u32)
        }
    };
    if last >= lm_vocab {
        return Err(ModelError::Generation(format!(
            "action tokens up to {last} do not fit a vocabulary of {lm_vocab}"
        )));
    }
    Ok((first, last))
}

/// OpenVLA's `bins` action tokens on the highest ids of a language model with `lm_vocab` ids
/// that no added token (`added`, by id) uses: the last ids of the vocabulary when the added
/// tokens lie elsewhere, else the last ids below them (OpenVLA's bins end below Llama's
/// added padding token). An error names the vocabulary and the added tokens when no run of
/// `bins` free ids fits.
pub fn bins_clear_of_added_tokens(lm_vocab: u32, bins: usize, added: &[(u32, String)]) -> Result<BinTokenizer> {
    let mut end = lm_vocab;
    let start = loop {
        // Id 0 is never a bin (BinTokenizer keeps bins below the vocabulary's size).
        let Some(start) = end
            .checked_sub(bins as u32)
            .filter(|&start| start >= 1 && bins <= u32::MAX as usize)
        else {
            return Err(ModelError::Generation(format!(
                "{bins} action bins do not fit below the {} added tokens of a vocabulary of {lm_vocab}",
                added.len()
            )));
        };
        match added.iter().rev().find(|(id, _)| (start..end).contains(id)) {
            Some((id, _)) => end = *id,
            None => break start,
        }
    };
    BinTokenizer::new(start + bins as u32, bins).map_err(|e| ModelError::Generation(e.to_string()))
}

/// Refuses action ids `first..=last` that would take any of the tokenizer's added tokens
/// (`added`, by id, lowest first): an image or end-of-turn token would be read as an action.
fn clear_of_added_tokens(first: u32, last: u32, added: &[(u32, String)], path: &std::path::Path) -> Result<()> {
    let clashing: Vec<_> = added.iter().filter(|(id, _)| (first..=last).contains(id)).collect();
    let (Some((low, low_name)), Some((high, high_name))) = (clashing.first(), clashing.last()) else {
        return Ok(());
    };
    Err(ModelError::Config {
        path: path.to_path_buf(),
        message: format!(
            "the action tokens take ids {first}..={last}, which overlap {} of the tokenizer's added tokens, \
             ids {low}..={high} ({low_name:?} .. {high_name:?}); the actions need ids no added token uses",
            clashing.len()
        ),
    })
}

/// Only action tokens may be sampled: exactly a chunk's worth of bins, or FAST tokens until
/// the end token (which must come before the budget runs out).
pub struct ActionConstraint {
    first: u32,
    last: u32,
    /// The end token, for FAST.
    end: Option<u32>,
    /// Tokens a binned chunk takes.
    chunk_tokens: Option<usize>,
    emitted: usize,
    done: bool,
}

impl ActionConstraint {
    pub fn new(actions: &ActionVocabulary, lm_vocab: u32, steps: usize, dims: usize) -> Result<Self> {
        let (first, last) = action_range(actions, lm_vocab)?;
        let (end, chunk_tokens) = match actions {
            ActionVocabulary::Bins(_) => (None, Some(steps * dims)),
            ActionVocabulary::Fast { end, .. } => (Some(*end), None),
        };
        if end.is_some_and(|end| (first..=last).contains(&end) || end >= lm_vocab) {
            return Err(ModelError::Generation(format!(
                "the end-of-action token {end:?} must be outside the action ids {first}..={last} and the vocabulary"
            )));
        }
        Ok(Self {
            first,
            last,
            end,
            chunk_tokens,
            emitted: 0,
            done: false,
        })
    }
}

impl TokenConstraint for ActionConstraint {
    fn restrict(&mut self, logits: &mut [f32], remaining: usize) -> Cost {
        let must_end = self.end.is_some() && self.emitted > 0 && remaining <= 1;
        for (id, logit) in logits.iter_mut().enumerate() {
            let id = id as u32;
            let action = (self.first..=self.last).contains(&id) && !must_end;
            let end = self.end == Some(id) && self.emitted > 0;
            if !(action || end) {
                *logit = f32::NEG_INFINITY;
            }
        }
        // Two range checks and a store per logit.
        let n = logits.len() as u64;
        Cost::host(6 * n, 4 * n, 4 * n)
    }

    fn advance(&mut self, token: u32) -> Result<()> {
        if self.end == Some(token) {
            self.done = true;
        } else if (self.first..=self.last).contains(&token) {
            self.emitted += 1;
            self.done = self.chunk_tokens == Some(self.emitted);
        } else {
            return Err(ModelError::Generation(format!("token {token} is not an action token")));
        }
        Ok(())
    }

    fn is_complete(&self) -> bool {
        self.done
    }
}

/// pi0-FAST's state text: each normalised value put in one of 256 bins over [-1, 1]
/// (`np.digitize(x, linspace(-1, 1, 257)[:-1]) - 1`, so values below -1 give -1).
pub fn state_text(state: &[f64]) -> String {
    let bin = |x: f64| -> i64 {
        let below = (0..256).filter(|&i| -1.0 + 2.0 * i as f64 / 256.0 <= x).count() as i64;
        below - 1
    };
    state.iter().map(|&x| bin(x).to_string()).collect::<Vec<_>>().join(" ")
}

/// pi0-FAST's and pi0.5's prompt: the task cleaned of surrounding space, underscores and
/// newlines, then the normalized state in 256 bins (openpi's `PaligemmaTokenizer`).
pub fn state_prompt(task: &str, normalized_state: &[f64]) -> String {
    let task = task.trim().replace(['_', '\n'], " ");
    format!("Task: {task}, State: {};\n", state_text(normalized_state))
}

/// What the VLA needs besides the model.
pub struct VlaSpec {
    pub actions: ActionVocabulary,
    pub chunk_steps: usize,
    pub action_dims: usize,
    /// How each joint-state value is normalised before it is binned into the prompt.
    pub state_normalization: Vec<Normalization>,
}

pub struct Vla<B: Backend> {
    vlm: Arc<Vlm<B>>,
    spec: VlaSpec,
    lm_vocab: u32,
}

impl<B: Backend> Vla<B> {
    pub fn new(vlm: Arc<Vlm<B>>, spec: VlaSpec) -> Result<Self> {
        let lm_vocab = vlm.model().text().config().vocab_size as u32;
        ActionConstraint::new(&spec.actions, lm_vocab, spec.chunk_steps, spec.action_dims)?;
        let (first, last) = action_range(&spec.actions, lm_vocab)?;
        clear_of_added_tokens(first, last, &vlm.tokenizer().added_tokens(), vlm.tokenizer().path())?;
        for normalization in &spec.state_normalization {
            normalization
                .validate()
                .map_err(|e| ModelError::Generation(format!("state normalisation: {e}")))?;
        }
        Ok(Self { vlm, spec, lm_vocab })
    }

    pub fn spec(&self) -> &VlaSpec {
        &self.spec
    }

    /// The action token (bin id, or FAST id) of a language-model id the constraint allowed.
    pub fn action_token(&self, id: u32) -> u32 {
        match &self.spec.actions {
            ActionVocabulary::Bins(_) => id,
            ActionVocabulary::Fast { skip, .. } => self.lm_vocab - 1 - skip - id,
        }
    }

    /// The user turn for `subtask` with the robot in `state` (joint units).
    pub fn prompt(&self, subtask: &str, state: &[f64]) -> Result<String> {
        if state.len() != self.spec.state_normalization.len() {
            return Err(ModelError::Generation(format!(
                "the state has {} values, the policy expects {}",
                state.len(),
                self.spec.state_normalization.len()
            )));
        }
        if let Some(i) = state.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Generation(format!("state value {i} is {}", state[i])));
        }
        let normalized: Vec<f64> = state
            .iter()
            .zip(&self.spec.state_normalization)
            .map(|(&v, n)| n.normalize(v))
            .collect();
        Ok(state_prompt(subtask, &normalized))
    }

    /// Samples one chunk of action tokens for `subtask` in `frame` from `state`, handing each
    /// action token to `on_action` as it is sampled (not the end token).
    pub fn act(
        &self,
        frame: &EncodedFrame,
        subtask: &str,
        state: &[f64],
        opts: &GenerateOptions,
        mut on_action: impl FnMut(u32),
    ) -> Result<GenerationStats> {
        let user = self.prompt(subtask, state)?;
        let mut constraint = ActionConstraint::new(
            &self.spec.actions,
            self.lm_vocab,
            self.spec.chunk_steps,
            self.spec.action_dims,
        )?;
        let end = constraint.end;
        let opts = GenerateOptions {
            stop_ids: Vec::new(),
            ..opts.clone()
        };
        let on_token = |id: u32| {
            if Some(id) != end {
                on_action(self.action_token(id));
            }
        };
        let (_, stats) =
            self.vlm
                .generate_after_answer(&user, "Action: ", frame, &opts, Some(&mut constraint), on_token)?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_over_added_tokens_are_refused_naming_both_ranges() {
        let added = vec![(300, "<image>".to_string()), (301, "<end_of_utterance>".to_string())];
        let path = std::path::Path::new("tokenizer.json");
        assert!(clear_of_added_tokens(44, 299, &added, path).is_ok());
        let message = clear_of_added_tokens(100, 355, &added, path).unwrap_err().to_string();
        assert!(
            message.contains("100..=355") && message.contains("300..=301"),
            "{message}"
        );
        assert!(
            message.contains("<image>") && message.contains("<end_of_utterance>"),
            "{message}"
        );
    }

    #[test]
    fn bins_sit_on_the_last_ids_no_added_token_uses() {
        let at_end = vec![(296, "<a>".to_string()), (297, "<b>".to_string())];
        assert_eq!(
            bins_clear_of_added_tokens(298, 256, &at_end).unwrap().token_range(),
            (40, 295)
        );
        assert!(bins_clear_of_added_tokens(257, 256, &[]).is_ok());
        assert!(bins_clear_of_added_tokens(256, 256, &[]).is_err());
        let elsewhere = vec![(3, "<s>".to_string())];
        assert_eq!(
            bins_clear_of_added_tokens(298, 256, &elsewhere).unwrap().token_range(),
            (42, 297)
        );
        let scattered = vec![(10, "<x>".to_string()), (200, "<y>".to_string())];
        let error = bins_clear_of_added_tokens(298, 256, &scattered)
            .unwrap_err()
            .to_string();
        assert!(error.contains("256 action bins do not fit"), "{error}");
    }
}
