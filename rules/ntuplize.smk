# ntuplize: ROOT shards → Parquet shards (one each). Particle-flow samples: per sample a validation gate,
# then a TFDS (array_record) dataset. Jet samples: JetClass-II rows per shard, then one dataset of all jet
# samples, shuffled and split into train/val/test files.


rule ntuplize:
    # The generate job's record stands for its ROOT files (written by the same job; a missing file
    # re-runs that job); the files themselves are a parameter. This keeps 10k-shard DAGs small.
    input:
        f"{RESULTS}/sim/{{sample}}/{{job}}/provenance.json",
    output:
        parquet=per_shard("ntuples", ".parquet"),
        provenance=f"{RESULTS}/ntuples/{{sample}}/{{job}}/provenance.json",
    params:
        roots=lambda wc: [f.format(sample=wc.sample, job=wc.job) for f in per_shard("sim", ".root")],
        shards=job_shards,
        seed=split_seed,
        cfg=section("ntuplize", without=("validation",)),
    log:
        f"{LOGS}/ntuplize/{{sample}}/{{job}}.log",
    benchmark:
        f"{BENCH}/ntuplize/{{sample}}/{{job}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 30 * SHARDS_PER_JOB * attempt,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow ntuplize {params.roots} -o {output.parquet} --sample {wildcards.sample} --shard {params.shards}"
        " --seed {params.seed} --params {params.cfg:q} --generation-record {input} --provenance {output.provenance}"
        " > {log} 2>&1"


rule validate_ntuples:
    input:
        sample_ntuple_records,
    output:
        summary=f"{RESULTS}/ntuples/{{sample}}/validation.json",
        plot=report(
            f"{RESULTS}/ntuples/{{sample}}/validation.png",
            caption="../workflow/report/validation.rst",
            category="Datasets",
            subcategory="{sample}",
        ),
    params:
        shards=sample_ntuples,
        cfg=validation_section,
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
        "colliderflow validate {params.shards} --params {params.cfg:q} --summary {output.summary} --plot {output.plot}"
        " > {log} 2>&1"


rule tfds:
    # Depends on the sample's validation summary, which depends on every shard: a changed or missing
    # shard re-runs validation and then this. The shard list itself is a parameter, which keeps the
    # DAG small at production scale (tens of thousands of shards).
    input:
        f"{RESULTS}/ntuples/{{sample}}/validation.json",
    output:
        directory(f"{RESULTS}/tfds/{{sample}}"),
    params:
        shards=sample_ntuples,
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
        "colliderflow tfds {params.shards} --name {wildcards.sample} -o {output} > {log} 2>&1"


rule ntuplize_jets:
    input:
        f"{RESULTS}/sim/{{sample}}/{{job}}/provenance.json",
    output:
        parquet=per_shard("jets", ".parquet"),
        provenance=f"{RESULTS}/jets/{{sample}}/{{job}}/provenance.json",
    params:
        roots=lambda wc: [f.format(sample=wc.sample, job=wc.job) for f in per_shard("sim", ".root")],
        shards=job_shards,
        cfg=jet_section,
    log:
        f"{LOGS}/ntuplize_jets/{{sample}}/{{job}}.log",
    benchmark:
        f"{BENCH}/ntuplize_jets/{{sample}}/{{job}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 3000 * attempt,
        runtime=lambda wc, attempt: 30 * SHARDS_PER_JOB * attempt,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow ntuplize-jets {params.roots} -o {output.parquet} --params {params.cfg:q} --sample {wildcards.sample}"
        " --shard {params.shards} --generation-record {input} --provenance {output.provenance} > {log} 2>&1"


rule jet_dataset:
    # The jet ntuplize jobs' records stand for their shards (as in rule ntuplize); the shard list is a param.
    input:
        all_jet_records,
    output:
        train=directory(f"{JETSET}/train"),
        val=directory(f"{JETSET}/val"),
        test=directory(f"{JETSET}/test"),
        provenance=f"{JETSET}/provenance.json",
    params:
        shards=all_jet_shards,
        cfg=lambda wc: canonical_json({k: config["jets"][k] for k in ("split_fractions", "jets_per_file")}),
        seed=derive_seed(config["seed"], "jet_dataset"),
        outdir=lambda wc, output: os.path.dirname(output.provenance),
    log:
        f"{LOGS}/jet_dataset.log",
    benchmark:
        f"{BENCH}/jet_dataset.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow jet-dataset {params.shards} -o {params.outdir} --params {params.cfg:q} --seed {params.seed}"
        " --provenance {output.provenance} > {log} 2>&1"


rule jet_tfds:
    # The same jets as TFDS (array_record) shards, readable without TensorFlow (colliderflow.io.jet_tfds).
    input:
        train=f"{JETSET}/train",
        val=f"{JETSET}/val",
        test=f"{JETSET}/test",
    output:
        directory(f"{RESULTS}/tfds_jets"),
    log:
        f"{LOGS}/tfds_jets.log",
    benchmark:
        f"{BENCH}/tfds_jets.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow jet-tfds {input.train} {input.val} {input.test} --name jets -o {output} > {log} 2>&1"
