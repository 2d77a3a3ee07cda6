//! pi0-FAST's sampled language tokens to FAST action tokens, as lerobot's
//! `detokenize_actions` turns them, but token by token so each FAST token can drive the motion
//! decoder the moment it is sampled: the sequence must open with `Action:` when the config
//! says so; it ends at the first `|`; every occurrence of the tokens of `Action: ` is dropped
//! (scanning left to right, a match removed and the scan going on from where it started); each
//! remaining id `t` is FAST token `vocab - 1 - skip - t`, where `vocab` is the text tokenizer's
//! vocabulary without its added tokens. An id past the FAST vocabulary (a text token) is
//! skipped, as the `tokenizers` decoder lerobot calls skips it. An id below FAST token 0 is
//! refused: lerobot logs a warning and decodes the whole chunk to zeros (the mean action), a
//! chunk brainstem will not send to a robot.

use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;

/// The text that opens a chunk's tokens, and that lerobot removes wherever it occurs.
pub const ACTION_PREFIX: &str = "Action: ";

/// Where the FAST tokens and the markers around them sit in the text vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionTokens {
    /// The text tokenizer's vocabulary without added tokens (Hugging Face's `vocab_size`).
    base_vocab: u32,
    skip: u32,
    /// FAST tokens the action tokenizer has.
    fast_vocab: u32,
    /// `|`, the end of a chunk's actions.
    pub end: u32,
    /// The beginning-of-sequence token appended after the prompt.
    pub bos: u32,
    /// The tokens of [`ACTION_PREFIX`].
    prefix: Vec<u32>,
    /// The ids of `Action` and `:`, which open the tokens when the config checks them.
    required_opening: Option<[Option<u32>; 2]>,
}

impl ActionTokens {
    /// The markers of `text` (PaliGemma's tokenizer) around a FAST tokenizer of `fast_vocab`
    /// tokens `skip` ids below the end of the vocabulary; `bos` names the beginning token.
    pub fn new(text: &Tokenizer, bos: &str, fast_vocab: usize, skip: u32, validate_opening: bool) -> Result<Self> {
        let missing = |what: &str| ModelError::Tokenizer {
            path: text.path().to_path_buf(),
            message: format!("pi0-FAST needs the token {what:?}, which the tokenizer lacks"),
        };
        let base_vocab = text.base_vocab_size() as u32;
        let fast_vocab = fast_vocab as u32;
        if (base_vocab as i64) - 1 - (skip as i64) - (fast_vocab as i64 - 1) < 0 {
            return Err(ModelError::Tokenizer {
                path: text.path().to_path_buf(),
                message: format!(
                    "{fast_vocab} FAST tokens {skip} ids below the end do not fit a vocabulary of {base_vocab}"
                ),
            });
        }
        Ok(Self {
            base_vocab,
            skip,
            fast_vocab,
            end: text.token_id("|").ok_or_else(|| missing("|"))?,
            bos: text.token_id(bos).ok_or_else(|| missing(bos))?,
            prefix: text.encode(ACTION_PREFIX)?,
            required_opening: validate_opening.then(|| [text.token_id("Action"), text.token_id(":")]),
        })
    }

    /// A stream for one chunk's tokens.
    pub fn stream(&self) -> ActionTokenStream<'_> {
        ActionTokenStream {
            tokens: self,
            held: Vec::with_capacity(self.prefix.len()),
            seen: 0,
            ended: false,
        }
    }

    /// The FAST token of text id `id`: `None` past the FAST vocabulary, an error below it.
    fn fast_token(&self, id: u32) -> Result<Option<u32>> {
        let fast = self.base_vocab as i64 - 1 - self.skip as i64 - id as i64;
        match fast {
            f if f < 0 => Err(ModelError::Generation(format!(
                "token {id} is no FAST token ({f}, below 0): lerobot would decode the chunk to zeros; it is refused"
            ))),
            f if f >= self.fast_vocab as i64 => Ok(None),
            f => Ok(Some(f as u32)),
        }
    }
}

/// One chunk's sampled tokens becoming FAST tokens.
pub struct ActionTokenStream<'a> {
    tokens: &'a ActionTokens,
    /// Tokens that so far match the start of [`ACTION_PREFIX`]'s, held back until they either
    /// complete it (and are dropped) or stop matching.
    held: Vec<u32>,
    seen: usize,
    ended: bool,
}

impl ActionTokenStream<'_> {
    /// Takes the next sampled token, handing `emit` each FAST token it releases; true once the
    /// chunk's actions have ended (at `|`, the tokens held released).
    pub fn push(&mut self, id: u32, emit: &mut impl FnMut(u32)) -> Result<bool> {
        if self.ended {
            return Ok(true);
        }
        self.check_opening(id)?;
        self.seen += 1;
        if id == self.tokens.end {
            self.finish(emit)?;
            return Ok(true);
        }
        self.held.push(id);
        self.release(emit)?;
        Ok(false)
    }

    /// Ends the chunk (its budget spent without `|`), releasing the tokens held.
    pub fn finish(&mut self, emit: &mut impl FnMut(u32)) -> Result<()> {
        self.ended = true;
        let held = std::mem::take(&mut self.held);
        held.iter().try_for_each(|&id| self.emit(id, emit))
    }

    fn check_opening(&self, id: u32) -> Result<()> {
        let Some(opening) = self.tokens.required_opening else {
            return Ok(());
        };
        match opening.get(self.seen) {
            Some(expected) if *expected != Some(id) => Err(ModelError::Generation(format!(
                "pi0-FAST's tokens must begin with \"Action:\" (validate_action_token_prefix), but token {} is id {id}",
                self.seen
            ))),
            _ => Ok(()),
        }
    }

    /// Drops the held tokens once they spell the whole prefix; releases them one at a time
    /// from the front while they are not the start of it.
    fn release(&mut self, emit: &mut impl FnMut(u32)) -> Result<()> {
        let prefix = &self.tokens.prefix;
        loop {
            if !prefix.is_empty() && self.held == *prefix {
                self.held.clear();
                return Ok(());
            }
            if self.held.is_empty() || (prefix.starts_with(&self.held) && !prefix.is_empty()) {
                return Ok(());
            }
            let first = self.held.remove(0);
            self.emit(first, emit)?;
        }
    }

    fn emit(&self, id: u32, emit: &mut impl FnMut(u32)) -> Result<()> {
        if let Some(fast) = self.tokens.fast_token(id)? {
            emit(fast);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text ids 0..1024 with FAST tokens 0..512 at 895 down to 384; `|` = 91; the prefix is
    /// [65, 66, 67].
    fn tokens(validate: bool) -> ActionTokens {
        ActionTokens {
            base_vocab: 1024,
            skip: 128,
            fast_vocab: 512,
            end: 91,
            bos: 1026,
            prefix: vec![65, 66, 67],
            required_opening: validate.then_some([Some(65), Some(66)]),
        }
    }

    fn run(tokens: &ActionTokens, ids: &[u32]) -> Result<(Vec<u32>, bool)> {
        let mut stream = tokens.stream();
        let mut out = Vec::new();
        let mut emit = |t| out.push(t);
        for &id in ids {
            if stream.push(id, &mut emit)? {
                return Ok((out, true));
            }
        }
        stream.finish(&mut emit)?;
        Ok((out, false))
    }

    /// lerobot's `detokenize_actions` on one sequence, written as it is written there.
    fn lerobot(tokens: &ActionTokens, ids: &[u32]) -> Vec<u32> {
        let mut seq: Vec<u32> = match ids.iter().position(|&t| t == tokens.end) {
            Some(cut) => ids[..cut].to_vec(),
            None => ids.to_vec(),
        };
        let len = tokens.prefix.len();
        let mut i = 0;
        while i + len <= seq.len() {
            if seq[i..i + len] == tokens.prefix[..] {
                seq.drain(i..i + len);
            } else {
                i += 1;
            }
        }
        seq.iter()
            .map(|&id| 1024 - 1 - 128 - id as i64)
            .filter(|&f| (0..512).contains(&f))
            .map(|f| f as u32)
            .collect()
    }

    #[test]
    fn streamed_tokens_are_what_lerobot_detokenizes() {
        let t = tokens(false);
        let cases: [&[u32]; 6] = [
            &[65, 66, 67, 400, 401, 91, 402],
            &[400, 65, 66, 400, 65, 66, 67, 65, 66, 67, 500],
            &[65, 65, 66, 67, 66, 67, 410],
            &[65, 66],
            &[12, 400, 700, 895, 384, 383],
            &[91, 400],
        ];
        for ids in cases {
            let (streamed, _) = run(&t, ids).unwrap();
            assert_eq!(streamed, lerobot(&t, ids), "{ids:?}");
        }
    }

    #[test]
    fn tokens_are_released_the_moment_they_cannot_open_the_prefix() {
        let t = tokens(false);
        let mut stream = t.stream();
        let mut out = Vec::new();
        stream.push(65, &mut |f| out.push(f)).unwrap();
        assert!(out.is_empty(), "65 may open the prefix");
        stream.push(400, &mut |f| out.push(f)).unwrap();
        assert_eq!(out, vec![1024 - 129 - 400], "65 is a text token, skipped; 400 released");
        assert!(stream.push(91, &mut |f| out.push(f)).unwrap(), "| ends the chunk");
    }

    #[test]
    fn ids_below_fast_token_zero_are_refused() {
        let error = run(&tokens(false), &[400, 1000]).unwrap_err().to_string();
        assert!(error.contains("token 1000") && error.contains("zeros"), "{error}");
    }

    #[test]
    fn a_checked_opening_must_be_action_colon() {
        assert!(run(&tokens(true), &[65, 66, 67, 400, 91]).is_ok());
        let error = run(&tokens(true), &[65, 400, 91]).unwrap_err().to_string();
        assert!(error.contains("token 1 is id 400"), "{error}");
        assert!(run(&tokens(true), &[91]).is_err(), "lerobot checks before it cuts at |");
    }
}
