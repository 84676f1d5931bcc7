"""Shared fixtures: tiny SQLite databases and a tiny random causal LM with a tokenizer trained on the spot.

Everything here is built in-process; nothing is downloaded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TOKENIZER_CORPUS = [
    "SELECT name FROM singer WHERE age > 30",
    "SELECT count(*) FROM concert",
    "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id",
    "SELECT country, avg(age) FROM singer GROUP BY country ORDER BY avg(age) DESC LIMIT 3",
    "How many singers are there? What is the name of the oldest singer?",
    "List the names of concerts held in 2014. Which country has the most singers?",
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)",
    "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER, singer_id INTEGER)",
    "FOREIGN KEY (singer_id) REFERENCES singer(singer_id)",
    "You are a text-to-SQL assistant. Answer with one SQLite query. Database schema: Question: SQL:",
    "```sql SELECT DISTINCT name FROM singer WHERE country = 'France' ```",
    "system user assistant 0 1 2 3 4 5 6 7 8 9 = < > , . ; ( ) * ' \" -- /* */",
    "France Netherlands United States Joe Sharp Timbaland Justin Brown Rose White John Nizinik",
    "SELECT name, age FROM singer WHERE singer_id IN (SELECT singer_id FROM concert WHERE year = 2014)",
    "SELECT min(age), max(age) FROM singer UNION SELECT year, year FROM concert EXCEPT INTERSECT",
    "HAVING count(*) > 1 BETWEEN 10 AND 20 LIKE '%a%' NOT NULL IS AND OR",
] * 2


def make_tiny_db(path: Path) -> Path:
    """A small concert/singer database with a foreign key, in the Spider style."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, age INTEGER);
        CREATE TABLE concert (
            concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER, singer_id INTEGER,
            FOREIGN KEY (singer_id) REFERENCES singer(singer_id)
        );
        INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),
            (3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41), (5, 'John Nizinik', 'France', 43);
        INSERT INTO concert VALUES (1, 'Auditions', 2014, 1), (2, 'Super bootcamp', 2014, 2),
            (3, 'Home Visits', 2015, 3), (4, 'Week 1', 2014, 3), (5, 'Week 2', 2015, 5);
        """
    )
    con.commit()
    con.close()
    return path


@pytest.fixture
def tiny_db(tmp_path: Path) -> Path:
    """Path to `<tmp>/dbs/concert_singer/concert_singer.sqlite` (Spider layout; `db_root` is its grandparent)."""
    return make_tiny_db(tmp_path / "dbs" / "concert_singer" / "concert_singer.sqlite")


def build_tiny_model(out_dir: Path, *, vocab_size: int = 400, seed: int = 0) -> Path:
    """Save a 2-layer random Llama and a BPE tokenizer trained in-process on SQL-ish strings to `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TOKENIZER_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random Llama + trained tokenizer with a chat template (loads with Auto* classes)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data` (real benchmark files); skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
