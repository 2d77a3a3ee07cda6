//! A Hugging Face `tokenizer.json` with a byte-level BPE model turned into the
//! `tokenizer.ggml.*` metadata that [`super::Tokenizer::from_gguf`] (and llama.cpp) read:
//! the tokens ordered by id, the merges as `"a b"` strings, the token types and the
//! pre-tokenizer name, plus the chat template of a `tokenizer_config.json` beside it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{tok_err, TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED};
use crate::error::Result;
use crate::weights::gguf::GgufValue;
use crate::weights::read_file;

const TOKEN_TYPE_NORMAL: u64 = 1;
const TOKEN_TYPE_UNUSED: u64 = 5;

/// What a `tokenizer.json` converts to.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufVocab {
    /// `tokenizer.ggml.*` (and `tokenizer.chat_template`) keys and values.
    Metadata(Vec<(String, GgufValue)>),
    /// The tokenizer is not one brainstem can rebuild from GGUF metadata, and why.
    Unsupported(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Merge {
    Joined(String),
    Pair(String, String),
}

#[derive(Deserialize)]
struct BpeModel {
    vocab: BTreeMap<String, u32>,
    #[serde(default)]
    merges: Vec<Merge>,
    #[serde(default)]
    byte_fallback: bool,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    special: bool,
}

fn kind(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The GGUF pre-tokenizer name, or `None` when the split is not GPT-2's byte-level one.
fn pre_tokenizer_name(pre: &Value) -> Option<&'static str> {
    let byte_level = |v: &Value| kind(v) == "ByteLevel";
    let digits = |v: &Value| kind(v) == "Digits" && v.get("individual_digits") == Some(&Value::Bool(true));
    match kind(pre) {
        "ByteLevel" => Some("default"),
        "Sequence" => match pre.get("pretokenizers")?.as_array()?.as_slice() {
            [d, b] if digits(d) && byte_level(b) => Some("smollm"),
            parts if parts.iter().any(byte_level) => Some("default"),
            _ => None,
        },
        _ => None,
    }
}

/// Converts the `tokenizer.json` at `path`, padding the token list to `vocab_size`
/// (the rows of the model's embedding) as llama.cpp's converter does.
pub fn gguf_vocab_from_json(path: &Path, vocab_size: usize) -> Result<GgufVocab> {
    let json: Value = serde_json::from_slice(&read_file(path)?).map_err(|e| tok_err(path, e))?;
    let model = json.get("model").cloned().unwrap_or(Value::Null);
    if kind(&model) != "BPE" {
        let found = kind(&model).to_owned();
        return Ok(GgufVocab::Unsupported(format!(
            "the tokenizer model is {found:?}, not BPE"
        )));
    }
    let bpe: BpeModel = serde_json::from_value(model).map_err(|e| tok_err(path, e))?;
    let pre = pre_tokenizer_name(json.get("pre_tokenizer").unwrap_or(&Value::Null));
    let Some(pre) = pre.filter(|_| !bpe.byte_fallback) else {
        return Ok(GgufVocab::Unsupported(
            "the BPE is not byte-level (a SentencePiece-style vocabulary)".into(),
        ));
    };
    let added: Vec<AddedToken> = match json.get("added_tokens") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| tok_err(path, e))?,
        None => Vec::new(),
    };
    let (tokens, types) = tokens_by_id(&bpe, &added, vocab_size, path)?;
    let merges = bpe.merges.into_iter().map(|m| match m {
        Merge::Joined(s) => s,
        Merge::Pair(a, b) => format!("{a} {b}"),
    });
    let strings = |items: Vec<String>| GgufValue::Array(items.into_iter().map(GgufValue::String).collect());
    let mut metadata = vec![
        ("tokenizer.ggml.model".to_string(), GgufValue::String("gpt2".into())),
        ("tokenizer.ggml.pre".to_string(), GgufValue::String(pre.into())),
        ("tokenizer.ggml.tokens".to_string(), strings(tokens)),
        (
            "tokenizer.ggml.token_type".to_string(),
            GgufValue::Array(types.into_iter().map(GgufValue::I32).collect()),
        ),
        ("tokenizer.ggml.merges".to_string(), strings(merges.collect())),
    ];
    if let Some(template) = chat_template(&path.with_file_name("tokenizer_config.json"))? {
        metadata.push(("tokenizer.chat_template".to_string(), GgufValue::String(template)));
    }
    Ok(GgufVocab::Metadata(metadata))
}

/// Every token ordered by id with its GGUF token type; ids no token claims become
/// `[PAD{id}]` of type unused. Ids must stay below the larger of `vocab_size` and the
/// number of tokens, which bounds the allocation.
fn tokens_by_id(
    bpe: &BpeModel,
    added: &[AddedToken],
    vocab_size: usize,
    path: &Path,
) -> Result<(Vec<String>, Vec<i32>)> {
    let limit = vocab_size.max(bpe.vocab.len() + added.len());
    let entries = bpe.vocab.iter().map(|(t, &id)| (id, t, TOKEN_TYPE_NORMAL));
    let added_entries = added.iter().map(|t| {
        let kind = if t.special {
            TOKEN_TYPE_CONTROL
        } else {
            TOKEN_TYPE_USER_DEFINED
        };
        (t.id, &t.content, kind)
    });
    let mut slots: Vec<Option<(String, u64)>> = Vec::new();
    for (id, token, kind) in entries.chain(added_entries) {
        let id = id as usize;
        if id >= limit {
            return Err(tok_err(
                path,
                format!("token {token:?} has id {id}, beyond {limit} tokens"),
            ));
        }
        if slots.len() <= id {
            slots.resize(id + 1, None);
        }
        slots[id] = Some((token.clone(), kind));
    }
    slots.resize(slots.len().max(vocab_size), None);
    Ok(slots
        .into_iter()
        .enumerate()
        .map(|(id, slot)| {
            let (token, kind) = slot.unwrap_or_else(|| (format!("[PAD{id}]"), TOKEN_TYPE_UNUSED));
            (token, kind as i32)
        })
        .unzip())
}

/// The `chat_template` string of a `tokenizer_config.json`, when the file exists and has one.
fn chat_template(path: &Path) -> Result<Option<String>> {
    if !path.is_file() {
        return Ok(None);
    }
    let json: Value = serde_json::from_slice(&read_file(path)?).map_err(|e| tok_err(path, e))?;
    Ok(json.get("chat_template").and_then(Value::as_str).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::AddedToken as HfAddedToken;

    use super::*;
    use crate::tokenizer::Tokenizer;
    use crate::weights::gguf::Metadata;

    /// A small byte-level BPE in SmolLM2's shape, saved as `tokenizer.json` in `dir`.
    fn save_tokenizer(dir: &Path) -> PathBuf {
        let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
        alphabet.sort();
        let pairs = [
            ("t", "h"),
            ("th", "e"),
            ("Ġ", "the"),
            ("l", "l"),
            ("h", "e"),
            ("he", "ll"),
            ("hell", "o"),
        ];
        let mut vocab: Vec<String> = alphabet.iter().map(char::to_string).collect();
        vocab.extend(pairs.iter().map(|(a, b)| format!("{a}{b}")));
        let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let merges = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().unwrap();
        let mut tok = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        tok.with_pre_tokenizer(Some(Sequence::new(vec![Digits::new(true).into(), byte_level.into()])));
        tok.with_decoder(Some(byte_level));
        tok.add_special_tokens([HfAddedToken::from("<|im_start|>", true)])
            .unwrap();
        tok.add_tokens([HfAddedToken::from("robot", false)]).unwrap();
        let path = dir.join("tokenizer.json");
        tok.save(&path, true).unwrap();
        path
    }

    fn metadata(vocab: GgufVocab) -> BTreeMap<String, GgufValue> {
        match vocab {
            GgufVocab::Metadata(m) => m.into_iter().collect(),
            GgufVocab::Unsupported(why) => panic!("unsupported: {why}"),
        }
    }

    #[test]
    fn byte_level_bpe_round_trips_through_gguf_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let json = save_tokenizer(dir.path());
        let map = metadata(gguf_vocab_from_json(&json, 300).unwrap());
        assert_eq!(map["tokenizer.ggml.pre"], GgufValue::String("smollm".into()));
        let tokens = map["tokenizer.ggml.tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 300, "padded to the embedding rows");
        assert_eq!(tokens[299], GgufValue::String("[PAD299]".into()));
        let types = map["tokenizer.ggml.token_type"].as_array().unwrap();
        assert_eq!(types[263], GgufValue::I32(3), "<|im_start|> is a control token");
        let path = json.clone();
        let gguf = Tokenizer::from_gguf(&Metadata { map: &map, path: &path }).unwrap();
        let reference = Tokenizer::from_json_file(&json).unwrap();
        let text = "<|im_start|>the 2024 hello there, robot";
        assert_eq!(gguf.encode(text).unwrap(), reference.encode(text).unwrap());
    }

    #[test]
    fn merges_as_strings_and_non_byte_level_models() {
        let dir = tempfile::tempdir().unwrap();
        let json = save_tokenizer(dir.path());
        let expected = metadata(gguf_vocab_from_json(&json, 0).unwrap());
        let mut value: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let joined: Vec<Value> = value["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Value::String(format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap())))
            .collect();
        value["model"]["merges"] = Value::Array(joined);
        std::fs::write(&json, value.to_string()).unwrap();
        assert_eq!(metadata(gguf_vocab_from_json(&json, 0).unwrap()), expected);
        value["pre_tokenizer"] = serde_json::json!({"type": "Metaspace"});
        std::fs::write(&json, value.to_string()).unwrap();
        assert!(matches!(
            gguf_vocab_from_json(&json, 0).unwrap(),
            GgufVocab::Unsupported(_)
        ));
        value["model"]["vocab"]["x"] = Value::from(1u64 << 31);
        value["pre_tokenizer"] = serde_json::json!({"type": "ByteLevel"});
        std::fs::write(&json, value.to_string()).unwrap();
        assert!(
            gguf_vocab_from_json(&json, 0).is_err(),
            "an id far beyond the vocabulary"
        );
    }
}
