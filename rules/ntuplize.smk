# ntuplize: ROOT shard → Parquet shard; per sample a validation gate, then a TFDS (array_record) dataset.


rule ntuplize:
    input:
        f"{RESULTS}/sim/{{sample}}/{{shard}}.root",
    output:
        parquet=f"{RESULTS}/ntuples/{{sample}}/{{shard}}.parquet",
        provenance=f"{RESULTS}/ntuples/{{sample}}/{{shard}}.provenance.json",
    params:
        seed=split_seed,
        cfg=section("ntuplize", without=("validation",)),
    log:
        f"{LOGS}/ntuplize/{{sample}}/{{shard}}.log",
    benchmark:
        f"{BENCH}/ntuplize/{{sample}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow ntuplize {input} -o {output.parquet} --sample {wildcards.sample} --shard {wildcards.shard}"
        " --seed {params.seed} --params {params.cfg:q} --provenance {output.provenance} > {log} 2>&1"


rule validate_ntuples:
    input:
        sample_ntuples,
    output:
        summary=f"{RESULTS}/ntuples/{{sample}}/validation.json",
        plot=report(
            f"{RESULTS}/ntuples/{{sample}}/validation.png",
            caption="../workflow/report/validation.rst",
            category="Datasets",
            subcategory="{sample}",
        ),
    params:
        cfg=lambda wc: canonical_json(config["ntuplize"].get("validation", {})),
    log:
        f"{LOGS}/validate/{{sample}}.log",
    benchmark:
        f"{BENCH}/validate/{{sample}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow validate {input} --params {params.cfg:q} --summary {output.summary} --plot {output.plot}"
        " > {log} 2>&1"


rule tfds:
    input:
        shards=sample_ntuples,
        validation=f"{RESULTS}/ntuples/{{sample}}/validation.json",
    output:
        directory(f"{RESULTS}/tfds/{{sample}}"),
    log:
        f"{LOGS}/tfds/{{sample}}.log",
    benchmark:
        f"{BENCH}/tfds/{{sample}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow tfds {input.shards} --name {wildcards.sample} -o {output} > {log} 2>&1"
