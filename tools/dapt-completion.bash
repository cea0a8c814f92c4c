# bash completion for dapt(1); `make install` puts it in
# $(datadir)/bash-completion/completions/dapt, where bash-completion loads it
# on the first `dapt <TAB>`.  Without bash-completion: `. tools/dapt-completion.bash`.
#
#   dapt <TAB>                  the commands of `dapt help`
#   dapt train --<TAB>          the options of `dapt train --help`
#   dapt train --set <TAB>      SECTION.KEY= for every key of `dapt config show --keys`
#   dapt config <TAB>           sub-commands from the usage lines (config show|check, analyze ...)
#   after --config, --model ... file names
#
# Every list comes from the dapt being completed (the command word, so
# build/dapt completes from the build tree), never from a copy kept here, so
# it stays right when commands, options or keys change.  dapt is an MPI
# program: each query is a singleton start (~0.8 s), so results are cached
# per shell and per dapt path.

declare -gA _dapt_cache

# Runs dapt for a listing, output only.  Open MPI refuses root without the
# two variables; a listing is no reason to refuse.
_dapt_run() { # DAPT ARGS...
    local dapt=$1
    shift
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$dapt" "$@" 2>/dev/null </dev/null
}

# The command names: the indented lines after "Commands:" in `dapt help`.
_dapt_commands() { # DAPT
    _dapt_run "$1" help | awk '/Commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 }'
}

# The long options of a command: those its --help names (its own and the
# common ones), leaving out what the text quotes in `...` or (...) and what
# follows another command's name ("Then: dapt eval --split test"), which
# are other commands' options or placeholders (--option=VALUE).
_dapt_options() { # DAPT COMMAND
    _dapt_run "$1" "$2" --help |
        awk -v cmd="$2" '{
            gsub(/`[^`]*`/, ""); gsub(/\([^()]*\)/, "")
            if (match($0, /dapt [a-z]+/) && substr($0, RSTART + 5, RLENGTH - 5) != cmd) $0 = substr($0, 1, RSTART - 1)
            print }' |
        grep -oE -- '(^|[^[:alnum:]-])--[a-z][a-z0-9-]*' | sed 's/^[^-]*//' | sort -u
}

# Sub-commands: the word after "dapt COMMAND" in the usage lines, when it is
# a plain word (config show|check, analyze spectrum|cka|delta).
_dapt_subcommands() { # DAPT COMMAND
    _dapt_run "$1" "$2" --help |
        awk -v cmd="$2" '$1 == "usage:" { $1 = ""; $0 = $0 } $1 == "dapt" && $2 == cmd && $3 ~ /^[a-z]+$/ { print $3 }' |
        sort -u
}

# SECTION.KEY for every key of the configuration schema.
_dapt_keys() { # DAPT
    _dapt_run "$1" config show --keys |
        awk '/^\[[a-z_]+\]/ { s = substr($1, 2, length($1) - 2); next } s != "" && /^[a-z_]+ = / { print s "." $1 }'
}

_dapt_cached() { # WHAT DAPT [COMMAND]
    local key="$2|$1|${3:-}"
    if [[ -z ${_dapt_cache[$key]+set} ]]; then
        _dapt_cache[$key]=$("_dapt_$1" "$2" ${3:+"$3"})
    fi
    printf '%s\n' "${_dapt_cache[$key]}"
}

_dapt() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local dapt=${COMP_WORDS[0]} cmd="" sub="" i
    dapt=${dapt/#\~/$HOME}
    COMPREPLY=()
    # The command is the first word that is not an option; for commands with
    # sub-commands, the next plain word is the sub-command.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -*) ;;
            *) if [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; elif [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; fi ;;
        esac
    done
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$(_dapt_cached commands "$dapt")" -- "$cur"))
        return
    fi
    case $prev in
        --set)
            compopt -o nospace 2>/dev/null
            COMPREPLY=($(compgen -W "$(_dapt_cached keys "$dapt" | sed 's/$/=/')" -- "$cur"))
            return ;;
        --config | --model | --task | --corpus | --input | --output | -o | --tokenizer | --importance | --save-hidden)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_dapt_cached options "$dapt" "$cmd")" -- "$cur"))
        return
    fi
    if [[ -z $sub ]]; then
        local subs
        subs=$(_dapt_cached subcommands "$dapt" "$cmd")
        if [[ -n $subs ]]; then
            COMPREPLY=($(compgen -W "$subs" -- "$cur"))
            return
        fi
    fi
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}

complete -F _dapt dapt
