# bash completion for medixctl: commands, kinds (`medixctl names kinds`), and the keys of the
# objects of a running medix-dp (`medixctl names KIND`, with the -p/--dp given on the line), where
# one answers.

_medixctl() {
  local cur prev words cword
  _init_completion || return

  local commands="show names lookup counters drops runtime qos vrrp ha clear capture trace ha-sync version sessions watch apply set delete peers peer intent areas dns help"
  local filters="--port --interface --tenant --vlan --sa --filter"
  # The target options given so far, for asking the daemon.
  local target=() i command= ncommand=0
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      -p | --dp | --cp | --tls-cert | --tls-key | --tls-ca)
        target+=("${words[i]}" "${words[i + 1]}")
        ((i++))
        ;;
      -o) ((i++)) ;;
      -*) ;;
      *)
        if [ -z "$command" ]; then command=${words[i]}; ncommand=$i; fi
        ;;
    esac
  done

  case $prev in
    -p) COMPREPLY=($(compgen -W "$(ls /var/run/dpdk 2>/dev/null)" -- "$cur")); return ;;
    --tls-cert | --tls-key | --tls-ca) _filedir; return ;;
    -o) COMPREPLY=($(compgen -W "table json" -- "$cur")); return ;;
    --dp | --cp) return ;;
  esac
  if [ -z "$command" ]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "-p --dp --cp --tls-cert --tls-key --tls-ca -o --version --help" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
    return
  fi
  local arg=$((cword - ncommand))  # 1: the word after the command
  case $command in
    show | names | delete | set)
      if [ $arg -eq 1 ]; then
        local extra=
        [ "$command" = show ] && extra="fib ports"
        # The kinds as medixctl knows them (from the proto): a new kind needs no line here.
        COMPREPLY=($(compgen -W "$(medixctl names kinds 2>/dev/null) $extra" -- "$cur"))
      elif [ $arg -eq 2 ] && [ "${words[ncommand + 1]}" != fib ]; then
        # The first key word of the objects there are.
        COMPREPLY=($(compgen -W "$(medixctl "${target[@]}" names "${words[ncommand + 1]}" 2>/dev/null | cut -d' ' -f1 | sort -u)" -- "$cur"))
      elif [ "${words[ncommand + 1]}" = fib ] && [ $arg -eq 2 ]; then
        COMPREPLY=($(compgen -W "$(medixctl "${target[@]}" names tenant 2>/dev/null)" -- "$cur"))
      fi
      ;;
    lookup)
      [ $arg -eq 1 ] && COMPREPLY=($(compgen -W "$(medixctl "${target[@]}" names tenant 2>/dev/null)" -- "$cur"))
      ;;
    clear) [ $arg -eq 1 ] && COMPREPLY=($(compgen -W "counters" -- "$cur")) ;;
    sessions) [ $arg -eq 1 ] && COMPREPLY=($(compgen -W "clear $(medixctl "${target[@]}" names tenant 2>/dev/null)" -- "$cur")) ;;
    watch) [ $arg -eq 1 ] && COMPREPLY=($(compgen -W "counters" -- "$cur")) ;;
    capture | trace)
      if [ "$command" = trace ] && [ $arg -eq 1 ]; then
        COMPREPLY=($(compgen -W "add show clear" -- "$cur"))
      elif [ "$command" = trace ] && [ $arg -eq 2 ]; then
        :  # the packet count
      else
        case $prev in
          --tenant) COMPREPLY=($(compgen -W "$(medixctl "${target[@]}" names tenant 2>/dev/null)" -- "$cur")) ;;
          --interface) COMPREPLY=($(compgen -W "$(medixctl "${target[@]}" names interface 2>/dev/null) $(medixctl "${target[@]}" names tunnel 2>/dev/null)" -- "$cur")) ;;
          --port) COMPREPLY=($(compgen -W "$(medixctl "${target[@]}" names port 2>/dev/null)" -- "$cur")) ;;
          --vlan | --sa | --filter | -c | --duration | --snaplen | --rate) ;;
          -w) _filedir pcapng ;;
          *)
            local extra=
            [ "$command" = capture ] && extra="--rx --tx --drops -c --duration --snaplen --rate -w"
            [ "$command" = capture ] || [ "${words[ncommand + 1]}" = add ] &&
              COMPREPLY=($(compgen -W "$filters $extra" -- "$cur"))
            ;;
        esac
      fi
      ;;
    apply) _filedir json ;;
    intent)
      if [ $arg -eq 1 ]; then COMPREPLY=($(compgen -W "show apply status" -- "$cur")); else _filedir json; fi
      ;;
    dns) [ $arg -eq 1 ] && COMPREPLY=($(compgen -W "zones records queries resolve" -- "$cur")) ;;
    peer)
      [ $arg -eq 2 ] && COMPREPLY=($(compgen -W "errors initiate terminate rekey" -- "$cur"))
      ;;
  esac
}
complete -F _medixctl medixctl
