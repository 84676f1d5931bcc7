import sqlite3

import pytest


def test_tiny_db_has_foreign_key(tiny_db):
    con = sqlite3.connect(tiny_db)
    fks = con.execute("PRAGMA foreign_key_list(concert)").fetchall()
    assert [(fk[2], fk[3], fk[4]) for fk in fks] == [("singer", "singer_id", "singer_id")]
    assert con.execute("SELECT count(*) FROM singer").fetchone() == (5,)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_tiny_model_generates_from_chat_template(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How many singers?"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.shape[1]
    assert sum(p.numel() for p in model.parameters()) < 200_000
