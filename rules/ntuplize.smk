# ntuplize: ROOT shards → Parquet shards (one each). Particle-flow samples: per sample a validation gate,
# then a TFDS (array_record) dataset. Jet samples: JetClass-II rows per shard, then one dataset of all jet
# samples, shuffled and split into train/val/test files.
#
# Shards in the DAG: the jobs' records stand for their shards on a filesystem, the shards themselves are
# inputs on remote storage (shard_inputs/shard_paths in common.smk). Every path a job writes is derived
# from its outputs, so that on remote storage it writes the local copies that are uploaded. Dataset
# directories (TFDS, the jet splits) are local(): the XRootD storage plugin copies files, not
# directories; they stay on the (shared) filesystem beside .snakemake/.
#
# Fast readers of a local dataset: Snakemake reruns a job whose oldest output or benchmark is older than
# an input, and XRootD gives modification times in whole seconds (rounded down). A job that reads a local
# dataset and stores something less than a second after the dataset was finished would look out of date
# on every later run. The jobs that take about a second or less (jet_tfds, weaver_config) therefore keep
# their outputs and benchmark local(); the others take seconds (imports and I/O alone).


rule ntuplize:
    input:
        roots=shard_inputs(per_shard("sim", ".root")),
        record=f"{RESULTS}/sim/{{sample}}/{{job}}/provenance.json",
    output:
        parquet=per_shard("ntuples", ".parquet"),
        provenance=f"{RESULTS}/ntuples/{{sample}}/{{job}}/provenance.json",
    params:
        **ntuplize_params(),
    log:
        f"{LOGS}/ntuplize/{{sample}}/{{job}}.log",
    benchmark:
        f"{BENCH}/ntuplize/{{sample}}/{{job}}.tsv"
    threads: 1
    resources:
        **shard_resources("ntuplize"),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow ntuplize {params.roots} -o {output.parquet} --sample {wildcards.sample} --shard {params.shards}"
        " --seed {params.seed} --params {params.cfg:q} --generation-record {input.record} --provenance {output.provenance}"
        " > {log} 2>&1"


rule validate_ntuples:
    input:
        shard_inputs(sample_ntuples, sample_ntuple_records),
    output:
        summary=f"{RESULTS}/ntuples/{{sample}}/validation.json",
        plot=report(
            f"{RESULTS}/ntuples/{{sample}}/validation.png",
            caption="../workflow/report/validation.rst",
            category="Datasets",
            subcategory="{sample}",
        ),
    params:
        **validate_params(),
    log:
        f"{LOGS}/validate/{{sample}}.log",
    benchmark:
        f"{BENCH}/validate/{{sample}}.tsv"
    threads: 1
    resources:
        **sample_resources("validate_ntuples", per_sample=True),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow validate {params.shards} --params {params.cfg:q} --summary {output.summary} --plot {output.plot}"
        " > {log} 2>&1"


rule tfds:
    # After the sample's validation gate: only validated shards become a dataset.
    input:
        validation=f"{RESULTS}/ntuples/{{sample}}/validation.json",
        shards=shard_inputs(sample_ntuples),
    output:
        local(directory(f"{RESULTS}/tfds/{{sample}}")),
    params:
        **tfds_params(),
    log:
        f"{LOGS}/tfds/{{sample}}.log",
    benchmark:
        f"{BENCH}/tfds/{{sample}}.tsv"
    threads: 1
    resources:
        **sample_resources("tfds", per_sample=True),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow tfds {params.shards} --name {wildcards.sample} -o {output} > {log} 2>&1"


rule ntuplize_jets:
    input:
        roots=shard_inputs(per_shard("sim", ".root")),
        record=f"{RESULTS}/sim/{{sample}}/{{job}}/provenance.json",
    output:
        parquet=per_shard("jets", ".parquet"),
        provenance=f"{RESULTS}/jets/{{sample}}/{{job}}/provenance.json",
    params:
        **ntuplize_jets_params(),
    log:
        f"{LOGS}/ntuplize_jets/{{sample}}/{{job}}.log",
    benchmark:
        f"{BENCH}/ntuplize_jets/{{sample}}/{{job}}.tsv"
    threads: 1
    resources:
        **shard_resources("ntuplize_jets"),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow ntuplize-jets {params.roots} -o {output.parquet} --params {params.cfg:q} --sample {wildcards.sample}"
        " --shard {params.shards} --generation-record {input.record} --provenance {output.provenance} > {log} 2>&1"


rule jet_dataset:
    # The split directories and their provenance stay together on the local filesystem (see above).
    input:
        shard_inputs(all_jet_shards, all_jet_records),
    output:
        train=local(directory(f"{JETSET}/train")),
        val=local(directory(f"{JETSET}/val")),
        test=local(directory(f"{JETSET}/test")),
        provenance=local(f"{JETSET}/provenance.json"),
    params:
        **jet_dataset_params(),
    log:
        f"{LOGS}/jet_dataset.log",
    benchmark:
        f"{BENCH}/jet_dataset.tsv"
    threads: 1
    resources:
        **sample_resources("jet_dataset", per_sample=False),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow jet-dataset {params.shards} -o {params.outdir} --params {params.cfg:q} --seed {params.seed}"
        " --provenance {output.provenance} > {log} 2>&1"


rule jet_tfds:
    # The same jets as TFDS (array_record) shards, readable without TensorFlow (colliderflow.io.jet_tfds).
    input:
        train=local(f"{JETSET}/train"),
        val=local(f"{JETSET}/val"),
        test=local(f"{JETSET}/test"),
    output:
        local(directory(f"{RESULTS}/tfds_jets")),
    log:
        f"{LOGS}/tfds_jets.log",
    benchmark:
        local(f"{BENCH}/tfds_jets.tsv")  # local: a fast reader of a local dataset (see the top)
    threads: 1
    resources:
        **sample_resources("jet_tfds", per_sample=False),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow jet-tfds {input.train} {input.val} {input.test} --name jets -o {output} > {log} 2>&1"
