//! Tokenizers: a Hugging Face `tokenizer.json`, or a GPT-2-style byte-level BPE rebuilt from a
//! GGUF file's `tokenizer.ggml.*` metadata (tokens, merges, token types, pre-tokenizer name)
//! with the `tokenizers` crate, and the reverse ([`gguf_vocab_from_json`]); and the ChatML
//! chat template that SmolLM2 uses.

mod gguf_vocab;

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use crate::error::{ModelError, Result};
use crate::weights::gguf::Metadata;
use crate::weights::WeightFile;
pub use gguf_vocab::{gguf_vocab_from_json, GgufVocab};

/// GGUF token types of tokens that are matched whole, before BPE (control, user-defined).
const TOKEN_TYPE_CONTROL: u64 = 3;
const TOKEN_TYPE_USER_DEFINED: u64 = 4;

/// A text tokenizer with the ids that end a turn.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    chat: Option<ChatTemplate>,
}

/// A chat template brainstem knows how to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n` per message, with the system message the
    /// template inserts when the conversation has none.
    ChatMl { default_system: Option<String> },
}

fn tok_err(path: &Path, message: impl ToString) -> ModelError {
    ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl Tokenizer {
    /// The tokenizer for a model path: `tokenizer.json` beside a checkpoint, or the metadata
    /// of a GGUF file.
    pub fn for_model(model_path: &Path, gguf: Option<&WeightFile>) -> Result<Tokenizer> {
        let dir = if model_path.is_dir() {
            model_path
        } else {
            model_path.parent().unwrap_or(Path::new("."))
        };
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_json_file(&json);
        }
        match gguf.and_then(WeightFile::gguf_metadata) {
            Some(meta) if meta.map.contains_key("tokenizer.ggml.tokens") => Self::from_gguf(&meta),
            _ => Err(ModelError::MissingTokenizer {
                path: model_path.to_path_buf(),
                looked: format!("{} and tokenizer.ggml.* GGUF metadata", json.display()),
            }),
        }
    }

    /// A `tokenizer.json`; the chat template's default system message comes from the
    /// `tokenizer_config.json` beside it when there is one.
    pub fn from_json_file(path: &Path) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| tok_err(path, e))?;
        let default_system = config_chat_template(&path.with_file_name("tokenizer_config.json"))?
            .and_then(|t| chatml_default_system(&t));
        let chat = inner
            .token_to_id("<|im_start|>")
            .map(|_| ChatTemplate::ChatMl { default_system });
        Ok(Tokenizer {
            inner,
            path: path.to_path_buf(),
            chat,
        })
    }

    /// Rebuilds a byte-level BPE tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(meta: &Metadata) -> Result<Tokenizer> {
        let path = meta.path.as_path();
        let model = meta.str_opt("tokenizer.ggml.model")?.unwrap_or("");
        if model != "gpt2" {
            return Err(tok_err(
                path,
                format!("tokenizer.ggml.model {model:?} is not supported (expected \"gpt2\")"),
            ));
        }
        let tokens = meta.strings("tokenizer.ggml.tokens")?.unwrap_or_default();
        let merges = meta.strings("tokenizer.ggml.merges")?.unwrap_or_default();
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| tok_err(path, "a merge is not two tokens separated by a space"))?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| tok_err(path, e))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer(meta.str_opt("tokenizer.ggml.pre")?, path)?));
        inner.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
        let special: Vec<AddedToken> = special_tokens(meta, &tokens)?
            .into_iter()
            .map(|t| AddedToken::from(t, true))
            .collect();
        inner.add_special_tokens(special).map_err(|e| tok_err(path, e))?;
        let template = meta.str_opt("tokenizer.chat_template")?;
        let chat = template
            .filter(|t| t.contains("<|im_start|>"))
            .map(|t| ChatTemplate::ChatMl {
                default_system: chatml_default_system(t),
            });
        Ok(Tokenizer {
            inner,
            path: path.to_path_buf(),
            chat,
        })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| tok_err(&self.path, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The ids of `text` with the tokenizer's post-processing (its BOS or template tokens), as
    /// a Hugging Face tokenizer's `__call__` gives them.
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, true).map_err(|e| tok_err(&self.path, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The file this tokenizer was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| tok_err(&self.path, e))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The vocabulary without the added tokens, as a Hugging Face tokenizer's `vocab_size`
    /// counts it.
    pub fn base_vocab_size(&self) -> usize {
        self.inner.get_vocab_size(false)
    }

    /// The tokenizer's added tokens (special or not: `<image>`, `<end_of_utterance>`, ...),
    /// by id, lowest first.
    pub fn added_tokens(&self) -> Vec<(u32, String)> {
        let mut tokens: Vec<_> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, token)| (id, token.content))
            .collect();
        tokens.sort_unstable();
        tokens
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat.as_ref()
    }

    /// Ids that end an assistant turn: the template's end marker and end-of-text.
    pub fn stop_ids(&self) -> Vec<u32> {
        ["<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>"]
            .iter()
            .filter_map(|t| self.token_id(t))
            .collect()
    }

    /// The prompt for one user message, with the model's chat template when it has one.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> String {
        match &self.chat {
            Some(ChatTemplate::ChatMl { default_system }) => {
                let mut out = String::new();
                if let Some(system) = system.or(default_system.as_deref()) {
                    out.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
                }
                out.push_str(&format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"));
                out
            }
            None => user.to_string(),
        }
    }
}

fn pre_tokenizer(pre: Option<&str>, path: &Path) -> Result<PreTokenizerWrapper> {
    let byte_level = ByteLevel::new(false, true, true);
    match pre.unwrap_or("default") {
        "default" | "gpt2" => Ok(byte_level.into()),
        // SmolLM's tokenizer.json: every digit on its own, then GPT-2's byte-level split.
        "smollm" => Ok(Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()),
        other => Err(tok_err(
            path,
            format!("pre-tokenizer {other:?} is not supported (known: default, gpt2, smollm)"),
        )),
    }
}

fn special_tokens(meta: &Metadata, tokens: &[&str]) -> Result<Vec<String>> {
    let Some(types) = meta.map.get("tokenizer.ggml.token_type").and_then(|v| v.as_array()) else {
        return Ok(Vec::new());
    };
    if types.len() != tokens.len() {
        return Err(tok_err(
            meta.path,
            format!("{} token types for {} tokens", types.len(), tokens.len()),
        ));
    }
    Ok(types
        .iter()
        .zip(tokens)
        .filter(|(t, _)| matches!(t.as_u64(), Some(TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED)))
        .map(|(_, tok)| tok.to_string())
        .collect())
}

/// The `chat_template` string of a `tokenizer_config.json`, if the file exists and has one.
fn config_chat_template(path: &Path) -> Result<Option<String>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| tok_err(path, e))?;
    Ok(config.get("chat_template").and_then(|t| t.as_str()).map(str::to_string))
}

/// The system message a ChatML template inserts when the conversation has none.
fn chatml_default_system(template: &str) -> Option<String> {
    const START: &str = "<|im_start|>system\n";
    let from = template.find(START)? + START.len();
    let len = template[from..].find("<|im_end|>")?;
    Some(template[from..from + len].to_string())
}
