# train: one model on the TFDS datasets of every sample, sampled with the weights stage's weights.
# Checkpoints live beside the model. A retried attempt (a killed or pre-empted job) resumes from the
# newest unfinished checkpoint written with the same train config; anything else starts over.


rule train:
    input:
        tfds=all_tfds,
        weights=f"{RESULTS}/weights/pf.parquet",
    output:
        model=f"{RESULTS}/models/{{model}}/model.pt",
        metrics=f"{RESULTS}/models/{{model}}/metrics.jsonl",
        provenance=f"{RESULTS}/models/{{model}}/provenance.json",
    params:
        seed=lambda wc: derive_seed(config["seed"], "train", wc.model),
        cfg=section("train"),
        outdir=lambda wc: f"{RESULTS}/models/{wc.model}",
    log:
        f"{LOGS}/train/{{model}}.log",
    benchmark:
        f"{BENCH}/train/{{model}}.tsv"
    threads: config["train"].get("threads", 2)
    resources:
        mem_mb=lambda wc, attempt: 8000 + 4000 * (attempt - 1),
        runtime=lambda wc, attempt: 120 * attempt,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow train --tfds {input.tfds} --weights {input.weights} --params {params.cfg:q}"
        " --seed {params.seed} -o {params.outdir} > {log} 2>&1"
