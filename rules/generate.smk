# generate: one job per (sample, job) making SHARDS_PER_JOB shards; each shard's seed is derived from the
# global seed, the sample and the shard's global number.


rule generate:
    output:
        root=per_shard("sim", ".root"),
        # The job's record (one entry per shard) is its handle for the rules downstream.
        provenance=f"{RESULTS}/sim/{{sample}}/{{job}}/provenance.json",
    params:
        process=lambda wc: sample_config(wc)["process"],
        backend=lambda wc: sample_config(wc)["backend"],
        backend_options=lambda wc: canonical_json(sample_config(wc).get(sample_config(wc)["backend"], {})),
        n_events=lambda wc: sample_config(wc)["events_per_shard"],
        shards=job_shards,
        seeds=generate_seeds,
        cfg=section("generate"),
    log:
        f"{LOGS}/generate/{{sample}}/{{job}}.log",
    benchmark:
        f"{BENCH}/generate/{{sample}}/{{job}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * SHARDS_PER_JOB * attempt,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow generate --sample {wildcards.sample} --process {params.process} --backend {params.backend}"
        " --backend-options {params.backend_options:q} --shard {params.shards} --n-events {params.n_events}"
        " --seed {params.seeds} --params {params.cfg:q}"
        " -o {output.root} --provenance {output.provenance} > {log} 2>&1"
