# weights: sampling weights over the training split (weaver semantics): per event for the particle-flow
# dataset, per jet for the jet dataset, plus a weaver data config beside the jet files.


rule weights:
    # After every sample's validation gate: weights only for data that passed validation.
    input:
        validations=all_validations,
        shards=shard_inputs(all_ntuples),
    output:
        weights=f"{RESULTS}/weights/pf.parquet",
        histograms=f"{RESULTS}/weights/pf_histograms.json",
        plot=report(
            f"{RESULTS}/weights/pf_weights.png",
            caption="../workflow/report/weights.rst",
            category="Sampling weights",
        ),
        provenance=f"{RESULTS}/weights/pf.provenance.json",
    params:
        **weights_params(),
    log:
        f"{LOGS}/weights/pf.log",
    benchmark:
        f"{BENCH}/weights/pf.tsv"
    threads: 1
    resources:
        **sample_resources("weights", per_sample=False),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow weights {params.shards} --params {params.cfg:q} -o {output.weights}"
        " --histograms {output.histograms} --plot {output.plot} --provenance {output.provenance} > {log} 2>&1"


rule jet_weights:
    input:
        local(f"{JETSET}/train"),
    output:
        weights=f"{RESULTS}/weights/jets.parquet",
        histograms=f"{RESULTS}/weights/jets_histograms.json",
        plot=report(
            f"{RESULTS}/weights/jets_weights.png",
            caption="../workflow/report/jet_weights.rst",
            category="Sampling weights",
        ),
        provenance=f"{RESULTS}/weights/jets.provenance.json",
    params:
        **jet_weights_params(),
    log:
        f"{LOGS}/weights/jets.log",
    benchmark:
        f"{BENCH}/weights/jets.tsv"
    threads: 1
    resources:
        **sample_resources("jet_weights", per_sample=False),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow jet-weights {input} --params {params.cfg:q} -o {output.weights}"
        " --histograms {output.histograms} --plot {output.plot} --provenance {output.provenance} > {log} 2>&1"


rule weaver_config:
    # weaver reads the jet files with this data config unchanged; its weights block is `jet_weights`.
    # Output and benchmark local(), like the splits it reads: weaver opens `--data-config` as a local
    # path, and this job takes under a second (see "Fast readers of a local dataset" in ntuplize.smk).
    input:
        local(f"{JETSET}/train"),
    output:
        local(f"{JETSET}/weaver_data_config.yaml"),
    params:
        **weaver_config_params(),
    log:
        f"{LOGS}/weights/weaver_config.log",
    benchmark:
        local(f"{BENCH}/weights/weaver_config.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow weaver-config --params {params.cfg:q} -o {output} > {log} 2>&1"
