"""`bayctl complete [--shell bash|zsh]`: cliff's command and option data, plus bay names.

    source <(bayctl complete)                # bash
    source <(bayctl complete --shell zsh)    # zsh (through its bashcompinit)

cliff's own script needs bash-completion's `_get_comp_words_by_ref`; this one reads
COMP_WORDS/COMP_CWORD only, which bash sets and zsh's bashcompinit emulates, so one function
serves both. After a verb that takes a bay (show, verify, delete bay, ssh, policy apply
--bay) it offers the names `bayctl list --no-health -f value -c name` prints: bays are
listed from the local state directory, no node is contacted.
"""

from cliff.complete import CompleteCommand, CompleteDictionary

# Completion keys (cliff's: words joined by "_", "-" as "_") after which a bay name comes.
BAY_VERBS = ("show", "verify", "delete_bay", "ssh")

FUNCTION = r"""
_{name}()
{{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  local cmd="" var i comp completed="$__{name}_cmds" used=0 positional=0
  local -a words
  words=("${{COMP_WORDS[@]:1:$((COMP_CWORD - 1))}}")
  for var in "${{words[@]}}"; do
    [[ $var == -* ]] && break
    if [[ -z $cmd ]]; then i="$var"; else i="${{cmd}}_${{var}}"; fi
    i="${{i//-/_}}"
    eval "comp=\"\${{__{name}_cmds_$i}}\""
    [[ -z $comp ]] && break
    cmd="$i"; completed="$comp"; used=$((used + 1))
  done
  for var in "${{words[@]:$used}}"; do
    [[ $var != -* ]] && positional=$((positional + 1))
  done
  if [[ $cur != -* && ( $prev == --bay ||
        ( " {bay_verbs} " == *" $cmd "* && ( $positional == 0 || $cmd == delete_bay ) ) ) ]]; then
    COMPREPLY=( $(compgen -W "$({name} list --no-health -f value -c name 2>/dev/null)" -- "$cur") )
    return 0
  fi
  if [[ $completed == -* && $cur != -* ]]; then
    COMPREPLY=( $(compgen -f -- "$cur") )
  else
    COMPREPLY=( $(compgen -W "$completed" -- "$cur") )
  fi
  return 0
}}
complete -F _{name} {name}
"""


class Complete(CompleteCommand):
    """Print a completion script for bash or zsh: commands, options and bay names."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        for action in parser._actions:
            if action.dest == "shell":
                action.choices = ["bash", "zsh", "none"]
        return parser

    def take_action(self, parsed_args):
        if parsed_args.shell == "none":
            return super().take_action(parsed_args)
        name = parsed_args.name or "bayctl"  # not app.NAME: `python -m bayctl.cli.main` calls it "main"
        data = CompleteDictionary()
        for command in self.app.command_manager:
            words = command[0].split()
            data.add_command(words, self.get_actions(words))
        out = self.app.stdout
        if parsed_args.shell == "zsh":
            # zsh runs the bash function through its bashcompinit (in sh emulation: arrays
            # from 0, as in bash), which needs the completion system loaded first.
            out.write("(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -u; }\n"
                      "autoload -U +X bashcompinit && bashcompinit\n")
        var = f"__{name.replace('-', '_')}_cmds"  # global (the function reads them): prefixed
        out.write(f"{var}='{data.get_commands()}'\n")
        for key, value in data.get_data():
            out.write(f"{var}_{key.replace('-', '_')}='{value}'\n")
        out.write(FUNCTION.format(name=name, bay_verbs=" ".join(BAY_VERBS)))
        return 0
