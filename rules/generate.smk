# generate: one job per (sample, shard); the seed is derived from the global seed, the sample and the shard.


rule generate:
    output:
        root=f"{RESULTS}/sim/{{sample}}/{{shard}}.root",
        provenance=f"{RESULTS}/sim/{{sample}}/{{shard}}.provenance.json",
    params:
        process=lambda wc: sample_config(wc)["process"],
        backend=lambda wc: sample_config(wc)["backend"],
        n_events=lambda wc: sample_config(wc)["events_per_shard"],
        seed=generate_seed,
        cfg=section("generate"),
    log:
        f"{LOGS}/generate/{{sample}}/{{shard}}.log",
    benchmark:
        f"{BENCH}/generate/{{sample}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow generate --sample {wildcards.sample} --process {params.process} --backend {params.backend}"
        " --shard {wildcards.shard} --n-events {params.n_events} --seed {params.seed} --params {params.cfg:q}"
        " -o {output.root} --provenance {output.provenance} > {log} 2>&1"
