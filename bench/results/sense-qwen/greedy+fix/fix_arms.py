import json, sys
from sense_hub.repair import repair
from sense_hub.evaluation import judge
dev = json.load(open('/work/shared/data/spider/dev.json'))
root = '/work/shared/data/spider/database'
out = {}
for arm in ('base', 'sft-strong'):
    rows = [json.loads(l) for l in open(f'bench/results/sense-qwen/{arm}.judged.jsonl')]
    paths = [f"{root}/{r['db_id']}/{r['db_id']}.sqlite" for r in rows]
    fixed = repair(None, [[{"role": "user", "content": ""}]] * len(rows), [r['pred'] for r in rows], paths, rounds=1)
    gold = [dev[int(r['question_id'].split('-')[1])]['query'] for r in rows]
    v = judge(list(zip(paths, gold, [f.sql for f in fixed])), metric='spider')
    with open(f'/tmp/{arm}+fix.judged.jsonl', 'w') as f:
        for r, one, x in zip(rows, fixed, v):
            f.write(json.dumps({"question_id": r['question_id'], "db_id": r['db_id'], "pred": one.sql, "correct": x.correct, "error": x.error}) + "\n")
    print(arm, sum(r['correct'] for r in rows), '->', sum(x.correct for x in v), 'runs', sum(x.error is None for x in v))
