# generate: one job per (sample, job) making SHARDS_PER_JOB shards; each shard's seed is derived from the
# global seed, the sample and the shard's global number.
BACKEND_ENVS = {"builtin": "colliderflow", "delphes": "delphes", "key4hep": "key4hep"}  # envs/<name>.yaml
#
# skip_failed_shards reaches `colliderflow generate` through the environment (COLLIDERFLOW_SKIP_FAILED_SHARDS,
# which its --skip-failed defaults to), not as a param: switching it on after a failure must re-run only the
# failed job, not every generation job, and params and shell text are rerun triggers. Jobs on a cluster
# parse this file again with the same config, so they see the same value.
os.environ["COLLIDERFLOW_SKIP_FAILED_SHARDS"] = "1" if config.get("skip_failed_shards", False) else "0"


envvars:
    "COLLIDERFLOW_SKIP_FAILED_SHARDS",


rule delphes_pileup:
    # One minimum-bias pile-up file per (sqrt_s, events, seed), shared by every Delphes sample whose card
    # merges pile-up (common.smk: delphes_pileup); the file name carries the configuration.
    output:
        pileup=f"{RESULTS}/pileup/minbias_{{sqrts}}GeV_{{nevents}}ev_seed{{pseed}}.pileup",
        provenance=f"{RESULTS}/pileup/minbias_{{sqrts}}GeV_{{nevents}}ev_seed{{pseed}}.json",
    params:
        **delphes_pileup_params(),
    log:
        f"{LOGS}/pileup/minbias_{{sqrts}}GeV_{{nevents}}ev_seed{{pseed}}.log",
    benchmark:
        f"{BENCH}/pileup/minbias_{{sqrts}}GeV_{{nevents}}ev_seed{{pseed}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: (10 + int(wc.nevents) // 100) * attempt,
    conda:
        "../envs/delphes.yaml"
    shell:
        "colliderflow pileup --sqrt-s {wildcards.sqrts} --n-events {wildcards.nevents} --seed {params.seed}"
        " -o {output.pileup} --provenance {output.provenance} > {log} 2>&1"


rule generate:
    input:
        pileup=pileup_input,
    output:
        root=per_shard("sim", ".root"),
        # The job's record (one entry per shard) is its handle for the rules downstream.
        provenance=f"{RESULTS}/sim/{{sample}}/{{job}}/provenance.json",
    params:
        **generate_params(),
    log:
        f"{LOGS}/generate/{{sample}}/{{job}}.log",
    benchmark:
        f"{BENCH}/generate/{{sample}}/{{job}}.tsv"
    threads: 1
    resources:
        **shard_resources("generate"),
    # Each backend runs in its own environment (envs/<backend>.yaml with --sdm conda), or in the sample's
    # `container` image with --sdm apptainer; the job itself checks its tools and names any that are missing.
    conda:
        lambda wc: f"../envs/{BACKEND_ENVS[sample_config(wc)['backend']]}.yaml"
    container:
        lambda wc: sample_config(wc).get("container")
    shell:
        "colliderflow generate --sample {wildcards.sample} --process {params.sample_cfg[process]}"
        " --backend {params.sample_cfg[backend]} --backend-options {params.sample_cfg[backend_options]:q}"
        " --process-options {params.sample_cfg[process_options]:q}"
        " --shard {params.shards} --n-events {params.sample_cfg[n_events]}"
        " --seed {params.seeds} --params {params.sample_cfg[cfg]:q} {params.pileup}"
        " -o {output.root} --provenance {output.provenance} > {log} 2>&1"


rule run_summary:
    # Every generation job's record: shards made, shards skipped (skip_failed_shards) and why.
    input:
        all_generation_records,
    output:
        f"{RESULTS}/run_summary.json",
    log:
        f"{LOGS}/run_summary.log",
    benchmark:
        f"{BENCH}/run_summary.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow run-summary {input} -o {output} > {log} 2>&1"
