package compose

import (
	"debug/elf"
	"fmt"
)

// CheckStatic returns why the ELF binary at path would not start on an empty base
// image: a program interpreter (the dynamic loader, absent from scratch), a dynamic
// section, or shared libraries it needs.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			return fmt.Errorf("%s asks for a program interpreter (dynamic loader)", path)
		case elf.PT_DYNAMIC:
			return fmt.Errorf("%s has a dynamic section", path)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v", path, libs)
	}
	return nil
}
